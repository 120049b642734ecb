-- Row level security that reads other tables.  A policy such as "the docs
-- of the projects I am a member of" decides which rows of docs a role
-- sees from the rows of members: a change of members changes what the
-- role may read, while no row of docs changed.  watch() finds such tables
-- (policy sources) and puts a trigger on them; each change queues a RELOAD
-- marker for docs, which reloads only the values that row level security
-- applies to.  A change of the policies themselves, or of row level
-- security, reloads the values of the roles it may apply to.  What cannot
-- be followed (a function whose body is text, another role's table) is
-- named in a WARNING.  See src/capture/policy_sources.cpp.
SET client_min_messages = warning;
CREATE SCHEMA policy_sources;
SET search_path = policy_sources, public;
CREATE ROLE regress_ps_alice;
CREATE ROLE regress_ps_bob;
-- (made now: a role made later would reload the values under policies)
CREATE ROLE regress_ps_mallory LOGIN;
CREATE TABLE projects (id int PRIMARY KEY, name text);
CREATE TABLE members (project_id int REFERENCES projects, login text,
                      PRIMARY KEY (project_id, login));
CREATE TABLE docs (id int PRIMARY KEY, project_id int REFERENCES projects, title text);
INSERT INTO projects VALUES (1, 'apollo'), (2, 'gemini'), (3, 'mercury');
INSERT INTO members VALUES (1, 'regress_ps_alice'), (2, 'regress_ps_bob'), (3, 'regress_ps_bob');
INSERT INTO docs VALUES (10, 1, 'plan'), (20, 2, 'budget'), (30, 3, 'memo');
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON docs
  USING (project_id IN (SELECT m.project_id FROM members m WHERE m.login = current_user));
GRANT USAGE ON SCHEMA policy_sources TO regress_ps_alice, regress_ps_bob;
GRANT SELECT ON projects, members, docs TO regress_ps_alice, regress_ps_bob;

-- The policy triggers on a table, and the tables they name.
CREATE FUNCTION pg_temp.policy_triggers(t regclass) RETURNS TABLE (trigger name, names text)
  LANGUAGE sql AS $$
  SELECT tgname, replace(encode(tgargs, 'escape'), '\000', ' ')
    FROM pg_trigger WHERE tgrelid = t AND tgname LIKE 'ectosync_policy%' AND tgparentid = 0
   ORDER BY 1 $$;

-- ==== watch() puts the policy triggers on members ====
SELECT ectosync.watch('docs') IS NOT NULL AS watched;
SELECT * FROM pg_temp.policy_triggers('members');
SELECT count(*) AS triggers_elsewhere FROM pg_trigger
 WHERE tgname LIKE 'ectosync_policy%' AND tgrelid <> 'members'::regclass;
SELECT ectosync.wait_for_worker();

-- Alice holds her docs, the superuser holds every doc (row level security
-- does not apply to it: its value is shared, and stays so).
SET ROLE regress_ps_alice;
SELECT ectosync.hold('regress_ps_alice docs', 'docs', listen => false) -> 'rows' AS alice_docs;
CREATE TEMP TABLE alice_value AS SELECT ectosync.load('docs') AS v;
RESET ROLE;
SELECT jsonb_array_length(ectosync.hold('all docs', 'docs', listen => false) -> 'rows') AS all_docs;
CREATE TEMP TABLE all_value AS SELECT ectosync.load('docs') AS v;

-- ==== Alice joins gemini: its docs enter her value, and nobody else's changes ====
INSERT INTO members VALUES (2, 'regress_ps_alice');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice, regress.got('all docs') AS all_docs;
-- sync() says so too: ZE001 for Alice, the superuser's value unchanged
SELECT regress.sync_as('regress_ps_alice', v) AS alice FROM alice_value;
SELECT regress.sync_as('none', v) AS all_docs FROM all_value;

-- ==== Alice leaves apollo: the row she may no longer read leaves her value ====
DELETE FROM members WHERE project_id = 1 AND login = 'regress_ps_alice';
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice, regress.got('all docs') AS all_docs;

-- wait_changes() finds Alice's value among the session's values (a pass
-- looks at the values under row level security whatever the worker
-- queued), and not her value of projects, which has no row level
-- security.  (The superuser's value of every doc, held in this session
-- too, answers her with an error: it is another role's.)
SELECT ectosync.watch('projects') IS NOT NULL AS projects_watched;
SET ROLE regress_ps_alice;
SELECT ectosync.hold('regress_ps_alice projects', 'projects', listen => false) IS NOT NULL AS held;
RESET ROLE;
INSERT INTO members VALUES (3, 'regress_ps_alice');
SELECT ectosync.wait_for_worker();
SET ROLE regress_ps_alice;
SELECT name, reloaded IS NOT NULL AS reloaded, jsonb_path_query_array(patch, '$[0].value.rows[*].id') AS ids,
       error IS NOT NULL AS refused
  FROM ectosync.wait_changes(2000) ORDER BY name;
SELECT ectosync.release('regress_ps_alice projects');
RESET ROLE;
SELECT ectosync.unwatch('projects');

-- A statement that changes no row of members queues nothing (row triggers).
UPDATE members SET login = login WHERE false;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;

-- TRUNCATE of members: Alice sees nothing any more.
TRUNCATE members;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice, regress.got('all docs') AS all_docs;
INSERT INTO members VALUES (1, 'regress_ps_alice'), (2, 'regress_ps_bob');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;

-- A transaction that changed members may not read docs under the policy
-- into a value (a rollback would leave the rows there): 0A000.  The
-- superuser, whom the policy does not apply to, may.
BEGIN;
INSERT INTO members VALUES (3, 'regress_ps_alice');
SELECT regress.sync_as('none', v) AS all_docs FROM all_value;
SELECT regress.sync_as('regress_ps_alice', v) FROM alice_value;
ROLLBACK;

-- ==== policies, row level security and the owner change: values reload ====
-- (not those of roles that bypass row level security)
CREATE POLICY titled ON docs AS RESTRICTIVE USING (title <> 'memo');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice, regress.got('all docs') AS all_docs;
ALTER POLICY member ON docs
  USING (project_id IN (SELECT m.project_id FROM members m WHERE m.login = current_user)
         OR project_id = 3);
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
DROP POLICY titled ON docs;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
ALTER TABLE docs DISABLE ROW LEVEL SECURITY;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice, regress.got('all docs') AS all_docs;
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
-- A new owner that may not put a trigger on members: it is no longer
-- followed (a WARNING says so); the old owner again: it is.
ALTER TABLE docs OWNER TO regress_ps_bob;
SELECT * FROM pg_temp.policy_triggers('members');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
ALTER TABLE docs OWNER TO CURRENT_USER;
SELECT * FROM pg_temp.policy_triggers('members');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
-- (the policy no longer reads members: its triggers go)
ALTER POLICY member ON docs USING (project_id = 3);
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
SELECT count(*) AS policy_triggers FROM pg_temp.policy_triggers('members');
ALTER POLICY member ON docs
  USING (project_id IN (SELECT m.project_id FROM members m WHERE m.login = current_user));
SELECT * FROM pg_temp.policy_triggers('members');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;

-- A rename of the watched table: the triggers name it anew.
ALTER TABLE docs RENAME TO documents;
SELECT * FROM pg_temp.policy_triggers('members');
ALTER TABLE documents RENAME TO docs;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
-- So does a rename of its schema.
ALTER SCHEMA policy_sources RENAME TO ps_renamed;
SELECT * FROM pg_temp.policy_triggers('ps_renamed.members');
ALTER SCHEMA ps_renamed RENAME TO policy_sources;
SELECT * FROM pg_temp.policy_triggers('members');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;

-- ==== a partitioned source ====
-- Rows written to a partition, a partition made later and truncated, a
-- partition attached with rows: each reloads Alice's reports.
CREATE TABLE grants (project_id int, login text) PARTITION BY LIST (project_id);
CREATE TABLE grants_1 PARTITION OF grants FOR VALUES IN (1);
INSERT INTO grants VALUES (1, 'regress_ps_alice');
CREATE TABLE reports (id int PRIMARY KEY, project_id int);
INSERT INTO reports VALUES (1, 1), (2, 2), (3, 3);
ALTER TABLE reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON reports
  USING (project_id IN (SELECT g.project_id FROM grants g WHERE g.login = current_user));
GRANT SELECT ON reports, grants TO regress_ps_alice;
SELECT ectosync.watch('reports') IS NOT NULL AS watched;
CREATE TABLE grants_2 PARTITION OF grants FOR VALUES IN (2);
SELECT t, p.* FROM unnest('{grants,grants_1,grants_2}'::regclass[]) t,
                   LATERAL pg_temp.policy_triggers(t) p;
SET ROLE regress_ps_alice;
SELECT ectosync.hold('regress_ps_alice reports', 'reports', listen => false) -> 'rows' AS reports;
RESET ROLE;
INSERT INTO grants_2 VALUES (2, 'regress_ps_alice');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
TRUNCATE grants_2;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
CREATE TABLE grants_3 (project_id int, login text);
INSERT INTO grants_3 VALUES (3, 'regress_ps_alice');
ALTER TABLE grants ATTACH PARTITION grants_3 FOR VALUES IN (3);
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
-- A partition dropped takes its rows with it, firing no trigger: the
-- values under the policy reload all the same (at its commit).
DROP TABLE grants_3;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
-- So does one dropped with its schema.
CREATE SCHEMA ps_parts;
CREATE TABLE ps_parts.grants_5 PARTITION OF grants FOR VALUES IN (5);
INSERT INTO ps_parts.grants_5 VALUES (5, 'regress_ps_alice');
INSERT INTO reports VALUES (5, 5);
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
DROP SCHEMA ps_parts CASCADE;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice reports') AS alice;
-- A policy that reads one partition of grants directly: its changes fire
-- the clone of grants' trigger, which names both tables now.
CREATE TABLE audits (id int PRIMARY KEY, project_id int);
ALTER TABLE audits ENABLE ROW LEVEL SECURITY;
CREATE POLICY first ON audits USING (project_id IN (SELECT project_id FROM grants_1));
SELECT ectosync.watch('audits') IS NOT NULL AS watched;
SELECT t, p.* FROM unnest('{grants,grants_1}'::regclass[]) t, LATERAL pg_temp.policy_triggers(t) p;
-- A clone disabled on a partition fires again at once.
ALTER TABLE grants_1 DISABLE TRIGGER ectosync_policy;
SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'grants_1'::regclass AND tgname = 'ectosync_policy';
SELECT ectosync.unwatch('audits');
SET ROLE regress_ps_alice;
SELECT ectosync.release('regress_ps_alice reports');
RESET ROLE;
SELECT ectosync.unwatch('reports');

-- ==== a source with inheritance children ====
-- Their rows are read with the source's: a row written to a child, a
-- child made later, a table that joins the tree with rows or leaves it,
-- each reloads Alice's boards.
CREATE TABLE seats (project_id int, login text);
CREATE TABLE seats_old () INHERITS (seats);
INSERT INTO seats_old VALUES (1, 'regress_ps_alice');
CREATE TABLE boards (id int PRIMARY KEY, project_id int);
INSERT INTO boards VALUES (1, 1), (2, 2), (3, 3);
ALTER TABLE boards ENABLE ROW LEVEL SECURITY;
CREATE POLICY seated ON boards
  USING (project_id IN (SELECT s.project_id FROM seats s WHERE s.login = current_user));
GRANT SELECT ON boards, seats TO regress_ps_alice;
SELECT ectosync.watch('boards') IS NOT NULL AS watched;
SET ROLE regress_ps_alice;
SELECT ectosync.hold('regress_ps_alice boards', 'boards', listen => false) -> 'rows' AS boards;
RESET ROLE;
INSERT INTO seats_old VALUES (2, 'regress_ps_alice');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice boards') AS alice;
CREATE TABLE seats_new () INHERITS (seats);
CREATE TABLE seats_guest (project_id int, login text);
INSERT INTO seats_guest VALUES (3, 'regress_ps_alice');
ALTER TABLE seats_guest INHERIT seats;
SELECT t, p.* FROM unnest('{seats,seats_old,seats_new,seats_guest}'::regclass[]) t,
                   LATERAL pg_temp.policy_triggers(t) p;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice boards') AS alice;
ALTER TABLE seats_guest NO INHERIT seats;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice boards') AS alice;
SELECT count(*) AS guest_triggers FROM pg_temp.policy_triggers('seats_guest');
SET ROLE regress_ps_alice;
SELECT ectosync.release('regress_ps_alice boards');
RESET ROLE;
SELECT ectosync.unwatch('boards');
DROP TABLE boards, seats_guest, seats CASCADE;
-- The walk is bounded: a chain of 70 inheritance children (any role can
-- make one of its own tables) is followed down to the walk's bound of 64
-- levels (the watched table's policy is the first), and the rest is
-- named in the WARNING; nothing fails.
CREATE TABLE chain_0 (project_id int);
DO $$ BEGIN
  FOR i IN 1..70 LOOP
    EXECUTE format('CREATE TABLE chain_%s () INHERITS (chain_%s)', i, i - 1);
  END LOOP;
END $$;
CREATE TABLE links (id int PRIMARY KEY, project_id int);
ALTER TABLE links ENABLE ROW LEVEL SECURITY;
CREATE POLICY chained ON links USING (project_id IN (SELECT project_id FROM chain_0));
SELECT ectosync.watch('links') IS NOT NULL AS watched;
SELECT count(DISTINCT tgrelid) AS tables_followed FROM pg_trigger
 WHERE tgname = 'ectosync_policy' AND tgrelid::regclass::text LIKE 'chain_%';
SELECT ectosync.unwatch('links');
DROP TABLE links, chain_0 CASCADE;

-- A trigger of another function under the policy trigger's name: watch()
-- says it cannot follow that table, and fails for nobody.
CREATE TABLE badges (project_id int, login text);
CREATE TRIGGER ectosync_policy BEFORE UPDATE ON badges FOR EACH ROW
  EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE TABLE awards (id int PRIMARY KEY, project_id int);
ALTER TABLE awards ENABLE ROW LEVEL SECURITY;
CREATE POLICY badge ON awards USING (project_id IN (SELECT project_id FROM badges));
SELECT ectosync.watch('awards') IS NOT NULL AS watched;
SELECT ectosync.unwatch('awards');

-- ==== a writer of a source who may not see the watched table's schema ====
-- (the trigger finds the table it names without privilege checks)
CREATE SCHEMA ps_private;
CREATE TABLE ps_private.ledger (id int PRIMARY KEY, project_id int);
ALTER TABLE ps_private.ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON ps_private.ledger
  USING (project_id IN (SELECT m.project_id FROM policy_sources.members m WHERE m.login = current_user));
SELECT ectosync.watch('ps_private.ledger') IS NOT NULL AS watched;
GRANT INSERT, DELETE ON members TO regress_ps_bob;
SET ROLE regress_ps_bob;
INSERT INTO members VALUES (1, 'regress_ps_bob');
DELETE FROM members WHERE project_id = 1 AND login = 'regress_ps_bob';
RESET ROLE;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
SELECT ectosync.unwatch('ps_private.ledger');
DROP SCHEMA ps_private CASCADE;

-- ==== through views and BEGIN ATOMIC functions; hidden in text bodies ====
CREATE TABLE teams (id int PRIMARY KEY, login text);
CREATE VIEW team_logins AS SELECT id, login FROM teams;
CREATE TABLE notes (id int PRIMARY KEY, team_id int, body text);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY team ON notes USING (team_id IN (SELECT id FROM team_logins WHERE login = current_user));
CREATE FUNCTION is_member(p int) RETURNS boolean LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM members m WHERE m.project_id = p AND m.login = current_user); END;
CREATE TABLE tasks (id int PRIMARY KEY, project_id int, name text);
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON tasks USING (is_member(project_id));
CREATE FUNCTION is_member_text(p int) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN RETURN EXISTS (SELECT 1 FROM members m WHERE m.project_id = p AND m.login = current_user); END $$;
CREATE TABLE issues (id int PRIMARY KEY, project_id int);
ALTER TABLE issues ENABLE ROW LEVEL SECURITY;
CREATE POLICY member ON issues USING (is_member_text(project_id));
SET client_min_messages = warning;
SELECT ectosync.watch('notes') IS NOT NULL AS notes_watched;
SELECT ectosync.watch('tasks') IS NOT NULL AS tasks_watched;
SELECT ectosync.watch('issues') IS NOT NULL AS issues_watched;
-- A policy that reads a session's setting (a tenant, in a hub whose users
-- share one role).
CREATE TABLE tenant_rows (id int PRIMARY KEY, tenant int);
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant ON tenant_rows
  USING (tenant = pg_catalog.current_setting('app.tenant', true)::int);
SELECT ectosync.watch('tenant_rows') IS NOT NULL AS tenant_rows_watched;
-- A value held under it is read under the settings it was held under: a
-- hub that asks for one tenant's changes while another tenant's setting
-- is in force gives it none of the other's rows (held_settings.cpp).
INSERT INTO tenant_rows VALUES (1, 1), (2, 2);
GRANT SELECT ON tenant_rows TO regress_ps_alice;
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE regress_ps_alice;
SET app.tenant = '1';
SELECT ectosync.hold('tenant 1', 'tenant_rows', listen => false) -> 'rows' AS tenant_1;
SET app.tenant = '2';
RESET ROLE;
INSERT INTO tenant_rows VALUES (3, 1), (4, 2);
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE regress_ps_alice;
SELECT ectosync.changes('tenant 1') -> 'patch' AS patch;
SELECT current_setting('app.tenant') AS setting_after;
SELECT ectosync.release('tenant 1');
-- A value shared while no policy applied, which one then does (a
-- migration): its session loads one of its own, under the settings it was
-- held under.
RESET ROLE;
ALTER TABLE tenant_rows DISABLE ROW LEVEL SECURITY;
SET ROLE regress_ps_alice;
SET app.tenant = '1';
SELECT jsonb_array_length(ectosync.hold('tenant shared', 'tenant_rows', listen => false) -> 'rows')
       AS rows;
SELECT shared_by IS NOT NULL AS shared FROM ectosync.held() WHERE name = 'tenant shared';
SET app.tenant = '2';
RESET ROLE;
ALTER TABLE tenant_rows ENABLE ROW LEVEL SECURITY;
SELECT ectosync.wait_for_worker() AS drained;
SET ROLE regress_ps_alice;
SELECT ectosync.changes('tenant shared') -> 'patch' -> 0 -> 'value' -> 'rows' AS rows;
SELECT ectosync.release('tenant shared');
RESET ROLE;
RESET app.tenant;
SELECT ectosync.unwatch('tenant_rows');
DROP TABLE tenant_rows;
SELECT * FROM pg_temp.policy_triggers('teams');
SELECT * FROM pg_temp.policy_triggers('members');

-- A view or function redefined (CREATE OR REPLACE) to read another table:
-- the triggers follow the new definition, and the values under the
-- policies reload at its commit.
CREATE TABLE crew (id int PRIMARY KEY, login text);
INSERT INTO teams VALUES (1, 'regress_ps_alice');
INSERT INTO crew VALUES (2, 'regress_ps_alice');
INSERT INTO notes VALUES (1, 1, 'a team note'), (2, 2, 'a crew note');
GRANT SELECT ON notes, team_logins TO regress_ps_alice;
SET ROLE regress_ps_alice;
SELECT ectosync.hold('regress_ps_alice notes', 'notes', listen => false) -> 'rows' AS alice_notes;
RESET ROLE;
CREATE OR REPLACE VIEW team_logins AS SELECT id, login FROM crew;
SELECT * FROM pg_temp.policy_triggers('crew');
SELECT count(*) AS teams_triggers FROM pg_temp.policy_triggers('teams');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice notes');
INSERT INTO crew VALUES (1, 'regress_ps_alice');
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice notes');
CREATE OR REPLACE FUNCTION is_member(p int) RETURNS boolean LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM crew c WHERE c.id = p AND c.login = current_user); END;
SELECT * FROM pg_temp.policy_triggers('crew');
-- A text body made BEGIN ATOMIC is followed from then on (no WARNING).
CREATE OR REPLACE FUNCTION is_member_text(p int) RETURNS boolean LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM crew c WHERE c.id = p AND c.login = current_user); END;
SELECT * FROM pg_temp.policy_triggers('crew');
-- A function reached through an operator is followed, and so is its
-- redefinition.
CREATE TABLE ushers (project_id int, login text);
CREATE FUNCTION seated_in(p int, l text) RETURNS boolean LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM members m WHERE m.project_id = p AND m.login = l); END;
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = text, FUNCTION = seated_in);
CREATE TABLE halls (id int PRIMARY KEY, project_id int);
ALTER TABLE halls ENABLE ROW LEVEL SECURITY;
CREATE POLICY seated ON halls USING (project_id OPERATOR(policy_sources.===) current_user::text);
SELECT ectosync.watch('halls') IS NOT NULL AS halls_watched;
SELECT count(*) AS ushers_triggers FROM pg_temp.policy_triggers('ushers');
CREATE OR REPLACE FUNCTION seated_in(p int, l text) RETURNS boolean LANGUAGE sql STABLE
  BEGIN ATOMIC SELECT EXISTS (SELECT 1 FROM ushers u WHERE u.project_id = p AND u.login = l); END;
SELECT * FROM pg_temp.policy_triggers('ushers');
SELECT ectosync.unwatch('halls');
-- A function or view that no policy reaches: nothing reloads.
CREATE TEMP TABLE before_replace AS SELECT reload_markers FROM ectosync.stats;
CREATE OR REPLACE FUNCTION pg_temp.unrelated() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;
CREATE OR REPLACE FUNCTION pg_temp.unrelated() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 2; END;
CREATE OR REPLACE VIEW pg_temp.unrelated_view AS SELECT 1 AS one;
CREATE OR REPLACE VIEW pg_temp.unrelated_view AS SELECT 2 AS one;
ALTER FUNCTION pg_temp.unrelated() SECURITY DEFINER;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before_replace b;
-- A function that a policy calls made SECURITY DEFINER reads as its owner
-- from then on: the values under the policy reload.
ALTER FUNCTION is_member(int) SECURITY DEFINER;
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before_replace b;
-- A redefinition rolled back moves no trigger.  (The refresh it made queued
-- its own marker at once, for the dependents its triggers named anew: one
-- reload too many, never one too few.)
BEGIN;
CREATE OR REPLACE VIEW team_logins AS SELECT id, login FROM teams;
ROLLBACK;
SELECT count(*) AS crew_triggers FROM pg_temp.policy_triggers('crew');
SELECT ectosync.wait_for_worker();
SELECT s.reload_markers - b.reload_markers AS new_reload_markers FROM ectosync.stats s, before_replace b;
SET ROLE regress_ps_alice; -- (its value: only its role may release it)
SELECT ectosync.release('regress_ps_alice notes');
RESET ROLE;

-- ==== a policy that reads other rows of its own table ====
CREATE TABLE folders (id int PRIMARY KEY, parent_id int REFERENCES folders, owner text);
ALTER TABLE folders ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON folders USING (owner = current_user OR EXISTS
  (SELECT 1 FROM folders p WHERE p.id = folders.parent_id AND p.owner = current_user));
SELECT ectosync.watch('folders') IS NOT NULL AS folders_watched;
SELECT * FROM pg_temp.policy_triggers('folders');

-- ==== an attacker's policy over another role's table ====
-- Mallory owns a table whose policy reads members (not hers): watch()
-- puts no trigger on members for it, and says so; nor may she put one
-- there, or on her own table, herself.
GRANT USAGE, CREATE ON SCHEMA policy_sources TO regress_ps_mallory;
SET ROLE regress_ps_mallory;
CREATE TABLE spy (id int PRIMARY KEY, project_id int);
ALTER TABLE spy ENABLE ROW LEVEL SECURITY;
CREATE POLICY peek ON spy USING (project_id IN (SELECT project_id FROM members));
SELECT ectosync.watch('spy') IS NOT NULL AS spy_watched;
DO $$ BEGIN
  CREATE TRIGGER ectosync_policy AFTER INSERT ON spy FOR EACH ROW
    EXECUTE FUNCTION ectosync.capture_policy_source('policy_sources.docs');
EXCEPTION WHEN insufficient_privilege THEN RAISE WARNING 'CREATE TRIGGER: %', SQLERRM;
END $$;
-- A look-alike trigger (its name, another function) does not make her
-- policy DDL reach Alice's value either.
CREATE TRIGGER ectosync_policy BEFORE UPDATE ON spy FOR EACH ROW
  EXECUTE FUNCTION suppress_redundant_updates_trigger('policy_sources.docs');
CREATE POLICY peek_more ON spy USING (true);
DROP POLICY peek_more ON spy;
ALTER TABLE spy DISABLE ROW LEVEL SECURITY;
-- Her temporary table's policy, made and dropped (the sql_drop event
-- trigger runs as the extension's owner): nobody's value moves, nothing
-- fails.
CREATE TEMP TABLE scratch (id int, project_id int);
ALTER TABLE scratch ENABLE ROW LEVEL SECURITY;
CREATE POLICY peek ON scratch USING (project_id IN (SELECT project_id FROM members));
DROP POLICY peek ON scratch;
DROP TABLE scratch;
-- Her look-alike trigger, dropped with its table: only ecto_sync's own
-- policy triggers count when they go.
CREATE TABLE decoy (id int);
CREATE TRIGGER ectosync_policy AFTER INSERT ON decoy FOR EACH ROW
  EXECUTE FUNCTION suppress_redundant_updates_trigger('policy_sources.docs');
DROP TABLE decoy;
RESET ROLE;
SELECT ectosync.wait_for_worker();
SELECT regress.got('regress_ps_alice docs') AS alice;
-- A view of hers that a superuser's policy names: what it reads gets no
-- trigger (she could point it at any table).
SET ROLE regress_ps_mallory;
CREATE VIEW peephole AS SELECT project_id FROM members;
RESET ROLE;
CREATE TABLE vaults (id int PRIMARY KEY, project_id int);
ALTER TABLE vaults ENABLE ROW LEVEL SECURITY;
CREATE POLICY through_view ON vaults USING (project_id IN (SELECT project_id FROM peephole));
SELECT ectosync.watch('vaults') IS NOT NULL AS vaults_watched;
SELECT * FROM pg_temp.policy_triggers('members');
-- Her view redefined as it was, in a transaction she keeps open: the
-- triggers stay as they are, so the watches' lock is not taken (it would
-- keep every watch() and refresh waiting until she ends).
SET ROLE regress_ps_mallory;
BEGIN;
CREATE OR REPLACE VIEW peephole AS SELECT project_id FROM members;
SELECT count(*) AS watches_locks FROM pg_locks
 WHERE relation = 'ectosync.watches'::regclass AND pid = pg_backend_pid();
ROLLBACK;
RESET ROLE;
SELECT ectosync.unwatch('vaults');

-- ==== privileges: what a GRANT changes is not followed, and said so ====
-- A policy that asks has_table_privilege() shows rows by a grant, which no
-- row and no change of roles records: watch() says it cannot follow it.
CREATE TABLE priv_badges (id int);
CREATE TABLE priv_secrets (id int PRIMARY KEY, open boolean);
ALTER TABLE priv_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY badge ON priv_secrets
  USING (open OR pg_catalog.has_table_privilege('policy_sources.priv_badges', 'SELECT'));
SELECT ectosync.watch('priv_secrets') IS NOT NULL AS watched;
SELECT ectosync.unwatch('priv_secrets');
DROP TABLE priv_secrets, priv_badges;

-- ==== unwatch: the triggers follow ====
SELECT ectosync.unwatch('docs');
SELECT ectosync.unwatch('tasks');
SELECT * FROM pg_temp.policy_triggers('members');
SELECT ectosync.unwatch('notes');
SELECT ectosync.unwatch('issues');
SELECT ectosync.unwatch('folders');
SELECT ectosync.unwatch('spy');
SELECT count(*) AS policy_triggers_left FROM pg_trigger
 WHERE tgfoid = 'ectosync.capture_policy_source'::regproc;
SELECT ectosync.release(name) FROM ectosync.held() WHERE name IN ('all docs');
SET ROLE regress_ps_alice;
SELECT ectosync.release('regress_ps_alice docs');
RESET ROLE;
RESET search_path;
DROP SCHEMA policy_sources CASCADE;
DROP OWNED BY regress_ps_alice, regress_ps_bob, regress_ps_mallory;
DROP ROLE regress_ps_alice, regress_ps_bob, regress_ps_mallory;
-- The markers of the roles dropped above are due within 100 ms: the next
-- test's marks must not see them.
SELECT ectosync.wait_for_worker() AS settled \gset
