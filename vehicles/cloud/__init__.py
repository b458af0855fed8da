"""The vehicle-cloud integration: everything that knows a car is reached through a cloud.

One job per module, imports pointing down (checked by lint-imports):

- provider: the interface every vehicle cloud implements, its typed results and errors;
- smartcar: that interface over Smartcar's HTTP API (real Smartcar or the local simulator);
- configured: which implementation this deployment uses;
- connections: a car's connection, its tokens and their refresh, falling ill;
- outbox: a command row's states and the one function that moves them;
- sending: the worker's side of a command (claim, answer, confirmation);
- sweep: commands a worker or a message lost;
- live_status: what the car last reported.

Nothing here schedules a Celery task for the outbox: the tasks (vehicles.tasks) sit above and
ring the worker's doorbell themselves, so asking for a command (vehicles.commands), running it
(vehicles.tasks) and its rules (here) import one way.
"""
