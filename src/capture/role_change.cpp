/*
 * role_change.cpp: the ProcessUtility hook that follows changes of roles,
 * so that no value held under row level security keeps rows its role may
 * no longer see, or misses rows it now may.
 *
 * A policy may decide by role membership (pg_has_role(), a role's name in
 * current_user), and superusers and BYPASSRLS roles skip policies
 * altogether.  None of that is a row, and roles are the cluster's, not a
 * database's: event triggers do not fire for GRANT role, ALTER ROLE or
 * DROP ROLE.  So this hook, installed in _PG_init as pg_stat_statements
 * installs its own, notes such a statement once it ran, and the commit
 * callback (xact_buffer.cpp) queues a RELOAD marker of every table (why:
 * kReloadRoles) in every database that uses ecto_sync.  The marker reloads
 * the held values that policies apply to, and a held value that they
 * started or stopped applying to (SUPERUSER, BYPASSRLS, a member of the
 * table's owner) reloads at its next call (held/changes.cpp); a client's
 * value of a table with row level security enabled is told to reload
 * (sync.cpp's reload_concerns()).  The others
 * take no notice, and no cached row is stale.  Markers that the worker has
 * not logged yet merge into one: a loop of GRANT and REVOKE costs each
 * holder one reload per call at most.
 *
 * Followed: CREATE, ALTER, DROP and renaming of roles, GRANT and REVOKE of
 * roles, ALTER GROUP, ALTER DATABASE ... OWNER TO (pg_database_owner's
 * member), and REASSIGN OWNED (a table's owner skips its policies unless
 * FORCE).  Not followed: a new password alone (only superusers read
 * passwords, and policies never apply to them), REASSIGN OWNED of a role's
 * objects to itself (nothing moves), and ALTER ROLE or DATABASE ... SET
 * (pg_roles.rolconfig; any role may set its own, which would make every
 * value under policies reload in every database: policy_sources.cpp names
 * pg_db_role_setting as not followed).  A statement in a subtransaction rolled back
 * still reloads (one reload too many); one in a transaction rolled back
 * does not.  The marker is queued once the commit's invalidation messages
 * are sent, and holders accept them before they look (xact_buffer.cpp).
 */
#include "pg/pg_boundary.hpp"
#include "capture/xact_buffer.hpp"
#include "settings.hpp"

extern "C" {
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "tcop/utility.h"
}

#include <cstring>

namespace ectosync {

static ProcessUtility_hook_type prev_process_utility = nullptr;

/* A role named in a statement, before it runs (public, or none: InvalidOid). */
static Oid role_named(RoleSpec *spec) {
  return spec->roletype == ROLESPEC_PUBLIC ? InvalidOid : get_rolespec_oid(spec, true);
}

/* Whether REASSIGN OWNED gives only the new owner's own objects to it. */
static bool reassigns_to_itself(ReassignOwnedStmt *stmt) {
  Oid to = role_named(stmt->newrole);
  ListCell *lc;
  foreach (lc, stmt->roles)
    if (role_named((RoleSpec *)lfirst(lc)) != to) return false;
  return OidIsValid(to);
}

/*
 * Whether stmt changes the memberships or attributes of roles, as
 * pg_has_role(), current_user and the roles' catalogs (pg_authid and
 * pg_auth_members, through pg_roles) show them to policies:
 * policy_sources.cpp leaves those catalogs to this hook.
 */
static bool changes_roles(Node *stmt) {
  switch (nodeTag(stmt)) {
    case T_CreateRoleStmt:
    case T_GrantRoleStmt:
    case T_DropRoleStmt:
      return true;
    case T_AlterOwnerStmt: /* (the database's owner is pg_database_owner's member) */
      return ((AlterOwnerStmt *)stmt)->objectType == OBJECT_DATABASE;
    case T_ReassignOwnedStmt: /* (a role's objects given to itself: nothing moves) */
      return !reassigns_to_itself((ReassignOwnedStmt *)stmt);
    case T_AlterRoleStmt: {
      ListCell *lc;
      foreach (lc, ((AlterRoleStmt *)stmt)->options)
        if (strcmp(((DefElem *)lfirst(lc))->defname, "password") != 0) return true;
      return false;
    }
    case T_RenameStmt:
      return ((RenameStmt *)stmt)->renameType == OBJECT_ROLE;
    default:
      return false;
  }
}

/*
 * The hook: the statement runs first (an ERROR there leaves nothing noted);
 * nothing here owns a C++ object, and changes_roles() reads the parse tree
 * only.
 */
static void process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree,
                            ProcessUtilityContext context, ParamListInfo params,
                            QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc) {
  bool roles = changes_roles(pstmt->utilityStmt);
  if (prev_process_utility)
    prev_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  if (roles) roles_changed_at_commit();
}

void role_change_init() {
  prev_process_utility = ProcessUtility_hook;
  ProcessUtility_hook = process_utility;
}

}  // namespace ectosync
