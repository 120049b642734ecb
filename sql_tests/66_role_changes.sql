-- Changes of roles.  A policy may decide by role membership ("the notes of
-- the teams I am in"), and superusers and BYPASSRLS roles skip policies:
-- a GRANT of a role, an ALTER ROLE ... BYPASSRLS or a rename changes what a
-- role sees while no row changed, and no event trigger fires for them
-- (roles are the cluster's).  ecto_sync's ProcessUtility hook notes such
-- statements, and their commit queues a RELOAD marker of every table, in
-- every database, that reloads the values of tables with row level
-- security enabled.  Values of other tables take no notice, and other role
-- options (a password) queue nothing.  See src/capture/role_change.cpp.
SET client_min_messages = warning;
CREATE SCHEMA role_changes;
SET search_path = role_changes, public;
CREATE ROLE regress_rc_alice;
CREATE ROLE regress_rc_editors;
CREATE ROLE regress_rc_viewers;
CREATE ROLE regress_rc_owner;
GRANT regress_rc_viewers TO regress_rc_alice;
CREATE TABLE notes (id int PRIMARY KEY, team text, body text);
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO notes VALUES (1, 'regress_rc_editors', 'draft'), (2, 'regress_rc_viewers', 'memo'),
                         (3, 'regress_rc_readers', 'digest');
INSERT INTO tags VALUES (1, 'urgent');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
-- (pg_roles, not pg_has_role(team, ...): a team that names no role is no error)
CREATE POLICY team ON notes USING (team IN (
  SELECT r.rolname FROM pg_catalog.pg_roles r
   WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')));
GRANT USAGE ON SCHEMA role_changes TO regress_rc_alice, regress_rc_owner;
GRANT SELECT ON notes, tags TO regress_rc_alice;
ALTER TABLE notes OWNER TO regress_rc_owner;

SELECT ectosync.watch('notes') IS NOT NULL AS watched, ectosync.watch('tags') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker();

-- Alice holds the notes of her teams, and the tags (no row level security).
SET ROLE regress_rc_alice;
SELECT ectosync.hold('regress_rc_alice notes', 'notes', listen => false) -> 'rows' AS alice_notes;
SELECT ectosync.hold('regress_rc_alice tags', 'tags', listen => false) -> 'rows' AS alice_tags;
CREATE TEMP TABLE alice_value AS SELECT ectosync.load('notes') AS v;
RESET ROLE;
-- The superuser holds every note: policies do not apply to it.
SELECT jsonb_array_length(ectosync.hold('all notes', 'notes', listen => false) -> 'rows') AS all_notes;

-- ==== A membership granted, then revoked ====
GRANT regress_rc_editors TO regress_rc_alice;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
SELECT regress.got('regress_rc_alice tags');
SELECT regress.got('all notes');
-- A client's own value (sync()) is told to reload, with the reason.
SELECT regress.sync_as('regress_rc_alice', v) FROM alice_value;
REVOKE regress_rc_editors FROM regress_rc_alice;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== BYPASSRLS gained and lost: the value shows every note, then hers ====
ALTER ROLE regress_rc_alice BYPASSRLS;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
ALTER ROLE regress_rc_alice NOBYPASSRLS;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== A member of the table's owner: its policies no longer apply ====
GRANT regress_rc_owner TO regress_rc_alice;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
REVOKE regress_rc_owner FROM regress_rc_alice;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== A group renamed: the policy matches it by name ====
ALTER ROLE regress_rc_viewers RENAME TO regress_rc_readers;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== Members added through ALTER GROUP, and a role dropped ====
ALTER GROUP regress_rc_editors ADD USER regress_rc_alice;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
DROP ROLE regress_rc_editors;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== Privileges that pass through one path of two ====
-- Alice is a member of secret through lead (NOINHERIT) and through staff:
-- only the second passes its privileges on.  Revoking it leaves her a
-- member, without them; a policy that asks for them hides the vault.
CREATE ROLE regress_rc_secret;
CREATE ROLE regress_rc_lead NOINHERIT;
CREATE ROLE regress_rc_staff;
GRANT regress_rc_secret TO regress_rc_lead, regress_rc_staff;
GRANT regress_rc_lead, regress_rc_staff TO regress_rc_alice;
CREATE TABLE vault (id int PRIMARY KEY);
INSERT INTO vault VALUES (1), (2);
ALTER TABLE vault ENABLE ROW LEVEL SECURITY;
CREATE POLICY secret ON vault USING (pg_catalog.pg_has_role(current_user, 'regress_rc_secret', 'USAGE'));
GRANT SELECT ON vault TO regress_rc_alice;
SELECT ectosync.watch('vault') IS NOT NULL AS watched;
SELECT ectosync.wait_for_worker();
SET ROLE regress_rc_alice;
SELECT ectosync.hold('regress_rc_alice vault', 'vault', listen => false) -> 'rows' AS alice_vault;
RESET ROLE;
REVOKE regress_rc_secret FROM regress_rc_staff;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice vault');
SELECT regress.got('regress_rc_alice notes') LIKE 'reloaded: %' AS notes_reloaded;
SET ROLE regress_rc_alice; -- (a role's names are its own)
SELECT ectosync.release('regress_rc_alice vault');
RESET ROLE;
SELECT ectosync.unwatch('vault');
DROP TABLE vault;
DROP ROLE regress_rc_secret, regress_rc_lead, regress_rc_staff;

-- ==== A storm of role statements: a marker of roles every 100 ms at most ====
-- A role that may change roles (CREATEROLE, ADMIN OPTION on a group)
-- could otherwise reload every value under policies, in every database, at
-- every worker pass, and push others' events out of the event log with its
-- markers.  They wait in the queue instead (one now, then one per 100 ms
-- of the storm, and the last at most 100 ms after it), and the last one
-- still comes: Alice's value ends with the editors' draft.
CREATE ROLE regress_rc_editors;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
CREATE TEMP TABLE storm AS
  SELECT reload_markers AS markers, clock_timestamp() AS started, NULL::interval AS took
    FROM ectosync.stats;
DO $$
BEGIN
  FOR i IN 1..25 LOOP
    GRANT regress_rc_editors TO regress_rc_alice;
    COMMIT;
    REVOKE regress_rc_editors FROM regress_rc_alice;
    COMMIT;
  END LOOP;
  GRANT regress_rc_editors TO regress_rc_alice;
END $$;
UPDATE storm SET took = clock_timestamp() - started;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - t.markers BETWEEN 1 AND 3 + extract(epoch FROM t.took) * 10
       AS markers_bounded
  FROM ectosync.stats s, storm t;
SELECT regress.got('regress_rc_alice notes');
REVOKE regress_rc_editors FROM regress_rc_alice;
DROP ROLE regress_rc_editors;
DROP TABLE storm;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');

-- ==== Statements that change nothing policies see queue nothing ====
-- (a role made is followed: a policy may list the roles)
CREATE ROLE regress_rc_plain;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_rc_alice notes');
CREATE TEMP TABLE before AS SELECT reload_markers FROM ectosync.stats;
-- A password (only superusers read it), a role's objects given to itself,
-- a role's settings (any role may change its own: watch() warned that
-- the policy's pg_roles reads them, not followed).
ALTER ROLE regress_rc_alice PASSWORD 'not followed';
REASSIGN OWNED BY regress_rc_alice TO regress_rc_alice;
ALTER ROLE regress_rc_alice SET work_mem = '2MB';
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before b;
SELECT regress.got('regress_rc_alice notes');

-- ==== A role change rolled back queues nothing ====
BEGIN;
GRANT regress_rc_plain TO regress_rc_alice;
-- A value read now would hold rows by the uncommitted membership: refused.
SET LOCAL ROLE regress_rc_alice;
SELECT ectosync.hold('regress_rc_alice notes again', 'notes', listen => false);
ROLLBACK;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before b;
SELECT regress.got('regress_rc_alice notes');

-- A prepared transaction could not reload at COMMIT PREPARED: refused.
BEGIN;
GRANT regress_rc_plain TO regress_rc_alice;
PREPARE TRANSACTION 'rc';

DROP TABLE alice_value;
SET ROLE regress_rc_alice;
SELECT ectosync.release('regress_rc_alice notes');
SELECT ectosync.release('regress_rc_alice tags');
RESET ROLE;
SELECT ectosync.release('all notes');
SELECT ectosync.unwatch('notes');
SELECT ectosync.unwatch('tags');
DROP SCHEMA role_changes CASCADE;
DROP ROLE regress_rc_alice, regress_rc_readers, regress_rc_plain, regress_rc_owner;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
