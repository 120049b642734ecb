/*
 * assoc_discovery.cpp: association discovery and naming from the foreign
 * keys of the catalog descriptions.  Pure C++: see assoc.hpp for the rules.
 */
#include "core/assoc.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>
#include <tuple>

namespace ectosync {

/* ==== catalog descriptions ==== */

const ColumnDesc *TableDesc::column(int16_t attnum) const {
  for (const auto &col : columns)
    if (col.attnum == attnum) return &col;
  return nullptr;
}

const ColumnDesc *TableDesc::column(std::string_view wanted) const {
  for (const auto &col : columns)
    if (col.name == wanted) return &col;
  return nullptr;
}

namespace {

/* Equal as sets (order and repeats ignored). */
bool same_set(std::vector<int16_t> a, std::vector<int16_t> b) {
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return a == b;
}

/* True when every element of part is in whole. */
bool is_subset(const std::vector<int16_t> &part, const std::vector<int16_t> &whole) {
  for (int16_t x : part)
    if (std::find(whole.begin(), whole.end(), x) == whole.end()) return false;
  return true;
}

/* ==== discovery ==== */

/* True when s ends with suffix. */
bool ends_with(const std::string &s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix.data(), suffix.size()) == 0;
}

/* Column names of attnums, joined by "_", for names of level 1. */
std::string column_names(const TableDesc &table, const std::vector<int16_t> &attnums) {
  std::string out;
  for (int16_t attnum : attnums) {
    const ColumnDesc *col = table.column(attnum);
    if (!out.empty()) out += "_";
    out += col ? col->name : std::to_string(attnum);
  }
  return out;
}

/* True when T's columns cols are unique in T (a unique index within them). */
bool columns_unique(const TableDesc &table, const std::vector<int16_t> &cols) {
  for (const auto &unique : table.uniques)
    if (!unique.empty() && is_subset(unique, cols)) return true;
  return false;
}

/* A join table: two foreign keys and a unique index on exactly their columns. */
bool is_join_table(const TableDesc &table, const std::vector<ForeignKey> &fks) {
  if (fks.size() != 2) return false;
  std::vector<int16_t> both = fks[0].from_cols;
  both.insert(both.end(), fks[1].from_cols.begin(), fks[1].from_cols.end());
  for (const auto &unique : table.uniques)
    if (same_set(unique, both)) return true;
  return false;
}

/* An association being named: its names at levels 0..2. */
struct Candidate {
  AssocDesc desc;
  std::string names[3];
  std::string sort_key; /* target schema, name, constraint: for suffixes */
  int level = 0;
};

/* A foreign key on the owner: belongs_to, named after its column or target. */
Candidate belongs_to(CatalogSource &catalog, const TableDesc &owner, const ForeignKey &fk) {
  const TableDesc &target = catalog.table(fk.to_relid);
  Candidate c;
  c.desc.kind = AssocKind::BelongsTo;
  c.desc.target = fk.to_relid;
  c.desc.owner_cols = fk.from_cols;
  c.desc.target_cols = fk.to_cols;
  c.desc.constraint = fk.name;
  const ColumnDesc *col = fk.from_cols.size() == 1 ? owner.column(fk.from_cols[0]) : nullptr;
  std::string base = col && col->name.size() > 3 && ends_with(col->name, "_id")
                         ? col->name.substr(0, col->name.size() - 3)
                         : singular(target.name);
  std::string by = base + "_by_" + column_names(owner, fk.from_cols);
  c.names[0] = base;
  c.names[1] = by;
  c.names[2] = base + "_by_" + fk.name;
  c.sort_key = target.schema + '\0' + target.name + '\0' + fk.name;
  return c;
}

/* A foreign key on target referencing the owner: has_many, or has_one when unique. */
Candidate has_many(const TableDesc &target, const ForeignKey &fk) {
  Candidate c;
  c.desc.kind = columns_unique(target, fk.from_cols) ? AssocKind::HasOne : AssocKind::HasMany;
  c.desc.target = target.relid;
  c.desc.owner_cols = fk.to_cols;
  c.desc.target_cols = fk.from_cols;
  c.desc.constraint = fk.name;
  std::string base = c.desc.kind == AssocKind::HasOne ? singular(target.name) : target.name;
  c.names[0] = base;
  c.names[1] = base + "_by_" + column_names(target, fk.from_cols);
  c.names[2] = base + "_by_" + fk.name;
  c.sort_key = target.schema + '\0' + target.name + '\0' + fk.name;
  return c;
}

/* owner_fk references the owner, other_fk the target, both on join. */
Candidate many_to_many(CatalogSource &catalog, const TableDesc &join, const ForeignKey &owner_fk,
                       const ForeignKey &other_fk) {
  const TableDesc &target = catalog.table(other_fk.to_relid);
  Candidate c;
  c.desc.kind = AssocKind::ManyToMany;
  c.desc.target = target.relid;
  c.desc.owner_cols = owner_fk.to_cols;
  c.desc.target_cols = other_fk.to_cols;
  c.desc.join = join.relid;
  c.desc.join_owner_cols = owner_fk.from_cols;
  c.desc.join_target_cols = other_fk.from_cols;
  c.desc.constraint = other_fk.name;
  std::string cols = column_names(join, other_fk.from_cols);
  c.names[0] = target.name;
  c.names[1] = target.name + "_by_" + cols;
  c.names[2] = target.name + "_through_" + join.name + "_by_" + cols;
  c.sort_key = target.schema + '\0' + target.name + '\0' + join.schema + '\0' + join.name + '\0' +
               other_fk.name;
  return c;
}

/* The candidates of a table, unnamed yet. */
std::vector<Candidate> candidates(CatalogSource &catalog, const TableDesc &owner) {
  std::vector<Candidate> out;
  for (const auto &fk : catalog.foreign_keys_from(owner.relid))
    out.push_back(belongs_to(catalog, owner, fk));
  for (const auto &fk : catalog.foreign_keys_to(owner.relid)) {
    const TableDesc &other = catalog.table(fk.from_relid);
    std::vector<ForeignKey> other_fks = catalog.foreign_keys_from(other.relid);
    if (!is_join_table(other, other_fks)) {
      out.push_back(has_many(other, fk));
      continue;
    }
    const ForeignKey &target_fk = other_fks[0].name == fk.name ? other_fks[1] : other_fks[0];
    out.push_back(many_to_many(catalog, other, fk, target_fk));
  }
  return out;
}

/*
 * Moves every candidate whose current name collides (with another's or with
 * a column) to its next level; returns false when nothing could move.
 */
bool advance_collisions(std::vector<Candidate> &cands, const TableDesc &owner) {
  std::map<std::string, int> count;
  for (const auto &c : cands) ++count[c.names[c.level]];
  bool moved = false;
  for (auto &c : cands) {
    const std::string &name = c.names[c.level];
    bool collides = count[name] > 1 || owner.column(name) != nullptr;
    if (collides && c.level < 2) {
      ++c.level;
      moved = true;
    }
  }
  return moved;
}

/* Level 3: numeric suffixes for names that still collide. */
void suffix_collisions(std::vector<Candidate> &cands, const TableDesc &owner) {
  std::stable_sort(cands.begin(), cands.end(),
                   [](const Candidate &a, const Candidate &b) { return a.sort_key < b.sort_key; });
  std::set<std::string> taken;
  for (const auto &c : cands) taken.insert(c.names[c.level]);
  std::set<std::string> kept;
  for (auto &c : cands) {
    std::string name = c.names[c.level];
    if (!kept.count(name) && !owner.column(name)) {
      kept.insert(name);
      c.desc.name = name;
      continue;
    }
    for (int n = 2;; ++n) {
      std::string next = name + "_" + std::to_string(n);
      if (!taken.count(next) && !owner.column(next)) {
        taken.insert(next);
        kept.insert(next);
        c.desc.name = next;
        break;
      }
    }
  }
}

}  // namespace

std::string singular(const std::string &name) {
  if (ends_with(name, "ies") && name.size() > 3) return name.substr(0, name.size() - 3) + "y";
  if (ends_with(name, "sses")) return name.substr(0, name.size() - 2);
  if (ends_with(name, "s") && !ends_with(name, "ss") && name.size() > 1)
    return name.substr(0, name.size() - 1);
  return name;
}

std::vector<AssocDesc> discover(CatalogSource &catalog, uint32_t relid) {
  const TableDesc &owner = catalog.table(relid);
  std::vector<Candidate> cands = candidates(catalog, owner);
  while (advance_collisions(cands, owner)) {
  }
  suffix_collisions(cands, owner);
  std::vector<AssocDesc> out;
  for (auto &c : cands) out.push_back(std::move(c.desc));
  std::sort(out.begin(), out.end(),
            [](const AssocDesc &a, const AssocDesc &b) { return a.name < b.name; });
  return out;
}

}  // namespace ectosync
