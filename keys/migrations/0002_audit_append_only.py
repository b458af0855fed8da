"""The audit log is append-only in the database itself: no UPDATE or DELETE, from the app, the
admin or a shell. (TRUNCATE, a maintenance operation, stays possible for tests and wipes.)"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION keys_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'keys_auditentry is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER keys_auditentry_append_only
    BEFORE UPDATE OR DELETE ON keys_auditentry
    FOR EACH ROW EXECUTE FUNCTION keys_audit_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS keys_auditentry_append_only ON keys_auditentry;
DROP FUNCTION IF EXISTS keys_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("keys", "0001_keys")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
