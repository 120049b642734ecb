-- sync() trusts the value it is given, and what it does with the value's
-- rows shows in the value it returns.  Under row level security, a value
-- forged with guessed rows would learn which of them another user's change
-- named: sync() removed the row whose key the hidden change had.  So a
-- value under row level security carries a seal that only load() and
-- sync() make, for the caller (its user, session user and custom
-- settings) at the value's seq; sync() asks for a reload (ZE001) of a
-- value whose seal is missing, another caller's, or of another seq.
SET client_min_messages = warning;
CREATE ROLE seal_owner LOGIN;
CREATE ROLE seal_spy LOGIN;
CREATE TABLE seal_accounts (id int PRIMARY KEY, owner name NOT NULL, balance numeric(10, 2), note text);
ALTER TABLE seal_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON seal_accounts USING (owner = current_user);
GRANT SELECT, INSERT, UPDATE ON seal_accounts TO seal_owner, seal_spy;
CREATE TABLE seal_plain (id int PRIMARY KEY, note text);
GRANT SELECT ON seal_plain TO seal_spy;
SELECT ectosync.watch('seal_accounts') IS NOT NULL AS watched,
       ectosync.watch('seal_plain') IS NOT NULL AS plain_watched;
INSERT INTO seal_accounts VALUES (7, 'seal_owner', 1.00, 'secret'), (20, 'seal_spy', 2.50, 'mine');
SELECT ectosync.wait_for_worker(10000) AS caught_up;

CREATE FUNCTION pg_temp.try_sync(val jsonb, e text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE synced jsonb;
BEGIN
  synced := ectosync.sync(val, e);
  RETURN 'rows: ' || (SELECT string_agg(r ->> 'id', ', ') FROM jsonb_array_elements(synced -> 'rows') r);
EXCEPTION WHEN OTHERS THEN
  DECLARE detail text;
  BEGIN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || coalesce(detail, '');
  END;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.try_sync(jsonb, text) TO seal_spy;

-- The spy's own value carries a seal; a value without row level security
-- (or of a role that bypasses it) does not.
SET ROLE seal_spy;
SELECT ectosync.load('seal_accounts') AS spy_value \gset
SELECT jsonb_typeof(:'spy_value'::jsonb -> 'seal') AS spy_seal,
       ectosync.load('seal_plain') ? 'seal' AS plain_sealed;
RESET ROLE;
SELECT ectosync.load('seal_accounts') ? 'seal' AS superuser_sealed;

-- The owner loads its value, then changes a row the spy cannot see.
SET ROLE seal_owner;
SELECT ectosync.load('seal_accounts') AS owner_value \gset
UPDATE seal_accounts SET note = 'changed' WHERE id = 7;
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS hidden_event FROM ectosync.stats() \gset

-- The spy forges a value of guessed rows 5, 7 and 9 just before that
-- event: the one that sync() removes is the hidden row's key.  Without a
-- seal, and with its own value's seal, it is asked to reload instead.
SET ROLE seal_spy;
SELECT jsonb_set(jsonb_set(:'spy_value'::jsonb, '{rows}',
                           '[{"id": 5, "owner": "seal_owner", "balance": 0, "note": null},
                             {"id": 7, "owner": "seal_owner", "balance": 0, "note": null},
                             {"id": 9, "owner": "seal_owner", "balance": 0, "note": null}]'),
                 '{seq}', to_jsonb(split_part(:'hidden_event', ':', 2)::bigint - 1)) AS forged \gset
SELECT pg_temp.try_sync(:'forged'::jsonb - 'seal', :'hidden_event') AS without_seal;
SELECT pg_temp.try_sync(:'forged', :'hidden_event') AS with_another_seal;
RESET ROLE;

-- A value that another role loaded is not the spy's either; its own value
-- with its seq moved (to skip what happened since) is not the one sealed;
-- nor is one synced under other custom settings, which policies may read.
SET ROLE seal_owner;
SELECT pg_temp.try_sync(:'owner_value', :'hidden_event') AS owner_syncs_own;
SET ROLE seal_spy;
SELECT pg_temp.try_sync(:'owner_value', :'hidden_event') AS spy_syncs_owners;
SELECT pg_temp.try_sync(jsonb_set(:'spy_value', '{seq}', to_jsonb((:'spy_value'::jsonb ->> 'seq')::bigint - 1)),
                        :'hidden_event') AS seq_moved;
SET app.tenant = 'other';
SELECT pg_temp.try_sync(:'spy_value', :'hidden_event') AS other_settings;
RESET app.tenant;
SELECT pg_temp.try_sync(:'spy_value', :'hidden_event') AS spy_syncs_own;
RESET ROLE;

-- The spy's own value syncs as ever: to a fresh load's seq, it is that
-- load, seal and all.  Printed again by a client that normalizes numbers
-- (2.50 as 2.5, as JavaScript does), it keeps its seal.
SET ROLE seal_spy;
UPDATE seal_accounts SET note = 'mine, changed' WHERE id = 20;
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS own_event FROM ectosync.stats() \gset
SET ROLE seal_spy;
SELECT ectosync.sync(:'spy_value', :'own_event') = ectosync.load('seal_accounts')
         AS equals_fresh_load,
       pg_temp.try_sync(replace(:'spy_value', '2.50', '2.5')::jsonb, :'own_event') AS reprinted;
RESET ROLE;

-- A genuine value stopped at another user's hidden change, with a change
-- of the spy's own after it: rows are read as they are now, so a page
-- (an offset) that the patcher read again showed the spy's later row, and
-- one it did not, did not; and it read the page again when the hidden row
-- had been ahead of its first row.  Under row level security sync() now
-- goes to what the worker loaded, and the hidden row's old values decide
-- nothing: a fresh load either way.
CREATE TABLE seal_pages (id int PRIMARY KEY, owner name NOT NULL, rank int NOT NULL);
ALTER TABLE seal_pages ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON seal_pages USING (owner = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON seal_pages TO seal_owner, seal_spy;
\set page_spec '{"$query": {"order_by": "rank", "offset": 1, "limit": 2}}'
SELECT ectosync.watch('seal_pages', :'page_spec') IS NOT NULL AS page_watched;
INSERT INTO seal_pages VALUES (1, 'seal_spy', 10), (2, 'seal_spy', 20), (3, 'seal_spy', 30),
                              (4, 'seal_spy', 40), (5, 'seal_owner', 5), (6, 'seal_owner', 35);
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SET ROLE seal_spy;
SELECT ectosync.load('seal_pages', :'page_spec') AS page \gset
SET ROLE seal_owner;
UPDATE seal_pages SET rank = 6 WHERE id = 5; -- ahead of the page's first row (20)
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS hidden_event FROM ectosync.stats() \gset
SET ROLE seal_spy;
INSERT INTO seal_pages VALUES (7, 'seal_spy', 1);
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SET ROLE seal_spy;
SELECT ectosync.sync(:'page', :'hidden_event') -> 'rows'
         = ectosync.load('seal_pages', :'page_spec') -> 'rows' AS hidden_ahead_fresh_rows;
SELECT ectosync.load('seal_pages', :'page_spec') AS page \gset
SET ROLE seal_owner;
UPDATE seal_pages SET rank = 36 WHERE id = 6; -- behind the page's first row (10)
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS hidden_event FROM ectosync.stats() \gset
SET ROLE seal_spy;
DELETE FROM seal_pages WHERE id = 7;
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SET ROLE seal_spy;
SELECT ectosync.sync(:'page', :'hidden_event') -> 'rows'
         = ectosync.load('seal_pages', :'page_spec') -> 'rows' AS hidden_behind_fresh_rows;
RESET ROLE;

-- A key written otherwise but equal (5.0 for 5) keeps the seal, as
-- numbers printed again by a client do.  The patcher reads by such keys,
-- and as int4 input '5.0' failed: an error raised only on the reads that a
-- hidden row's change decided (a page of a post's comments read again, for
-- the post the hidden comment is under), which told the spy where hidden
-- rows changed.  Keys are read in their canonical form: both posts sync.
CREATE TABLE seal_posts (id int PRIMARY KEY, t text);
CREATE TABLE seal_comments (id int PRIMARY KEY, post_id int NOT NULL REFERENCES seal_posts,
                            owner name NOT NULL, n int);
ALTER TABLE seal_comments ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON seal_comments USING (owner = current_user);
GRANT SELECT ON seal_posts TO seal_owner, seal_spy;
GRANT SELECT, UPDATE ON seal_comments TO seal_owner, seal_spy;
\set comments_spec '{"seal_comments": {"$query": {"order_by": "id", "limit": 10, "offset": 1}}}'
SELECT ectosync.watch('seal_posts', :'comments_spec') IS NOT NULL AS comments_watched;
INSERT INTO seal_posts VALUES (5, 'a'), (6, 'b');
INSERT INTO seal_comments VALUES (1, 5, 'seal_spy', 0), (2, 5, 'seal_spy', 0),
                                 (3, 6, 'seal_spy', 0), (10, 5, 'seal_owner', 0),
                                 (11, 6, 'seal_owner', 0);
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SET ROLE seal_spy;
SELECT jsonb_set(jsonb_set(ectosync.load('seal_posts', :'comments_spec'), '{rows,0,id}', '5.0'),
                 '{rows,1,id}', '6.0') AS rewritten \gset
SET ROLE seal_owner;
UPDATE seal_comments SET n = 1 WHERE id = 10;
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS hidden_event FROM ectosync.stats() \gset
SET ROLE seal_spy;
SELECT pg_temp.try_sync(:'rewritten', :'hidden_event') AS hidden_under_post_5;
SET ROLE seal_owner;
UPDATE seal_comments SET n = 1 WHERE id = 11;
RESET ROLE;
SELECT ectosync.wait_for_worker(10000) AS caught_up;
SELECT format('%s:%s', epoch, last_seq) AS hidden_event FROM ectosync.stats() \gset
SET ROLE seal_spy;
SELECT pg_temp.try_sync(:'rewritten', :'hidden_event') AS hidden_under_post_6;
RESET ROLE;

SELECT ectosync.unwatch('seal_accounts'), ectosync.unwatch('seal_plain'),
       ectosync.unwatch('seal_pages'), ectosync.unwatch('seal_posts');
DROP TABLE seal_accounts, seal_plain, seal_pages, seal_comments, seal_posts;
DROP FUNCTION pg_temp.try_sync(jsonb, text);
DROP ROLE seal_owner, seal_spy;
