/* carshare's behaviour. It lives here, not in the HTML, because the Content Security Policy
   allows no inline script and no hx-on:* attributes. Every page works without it. */
(function () {
  "use strict";

  if (window.htmx) {
    // Deferred scripts run before DOMContentLoaded, when htmx reads these.
    var config = window.htmx.config;
    // On a history cache miss htmx refetches the URL; our views answer HX-Request with a
    // fragment, so that request must look like a normal page load.
    config.historyRestoreAsHxRequest = false;
    // The CSP refuses inline styles: htmx's injected <style> (carshare.css carries those rules)
    // and its settling of style attributes would each log a violation.
    config.includeIndicatorStyles = false;
    config.attributesToSettle = ["class", "width", "height"];
  }

  // "Use my location": fills the latitude and longitude inputs named by the button's data-lat
  // and data-lng, then fires "change" so an htmx search form refreshes its results.
  function setUpGeolocate(button) {
    if (!("geolocation" in navigator)) {
      return; // the button stays hidden
    }
    var status = document.getElementById(button.dataset.status);
    button.hidden = false;
    button.addEventListener("click", function () {
      var lat = document.getElementById(button.dataset.lat);
      var lng = document.getElementById(button.dataset.lng);
      status.textContent = "Finding your location…";
      navigator.geolocation.getCurrentPosition(
        function (position) {
          lat.value = position.coords.latitude.toFixed(6);
          lng.value = position.coords.longitude.toFixed(6);
          status.textContent = "Location filled in.";
          lng.dispatchEvent(new Event("change", { bubbles: true }));
        },
        function () {
          status.textContent = "Your location is not available. Type the coordinates instead.";
        },
        { timeout: 10000, maximumAge: 600000 }
      );
    });
  }

  // The results region is replaced on each search; copy its summary into a live region that
  // stays, so screen readers announce the new count.
  function announceResults() {
    var live = document.getElementById("car-results-status");
    var summary = document.querySelector("#car-results [data-results-summary]");
    if (live && summary) {
      live.textContent = summary.textContent.replace(/\s+/g, " ").trim();
    }
  }

  document.querySelectorAll("[data-geolocate]").forEach(setUpGeolocate);
  document.body.addEventListener("htmx:afterSettle", announceResults);
})();
