// catalog.hpp: ivm's catalog (ivm.views, ivm.dependencies) and the objects
// each view owns: its table, state tables, capture and guard triggers.
#pragma once
#include "plan/ir.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace ivm::catalog {

struct Dependent {
  std::uint32_t oid;
  int level;
  plan::ViewPlan plan;
};

bool is_view(pg::Spi& spi, std::uint32_t relid);
// lookup: the oid of the ivm view called `name`; raises if there is none.
std::uint32_t lookup(pg::Spi& spi, const std::string& name);
plan::ViewPlan load_plan(pg::Spi& spi, std::uint32_t view);
std::string definition(pg::Spi& spi, std::uint32_t view);
// dependents: every immediate view reading `relation`, directly or through
// other views, in dependency order (cached per backend).
std::vector<Dependent> dependents(pg::Spi& spi, std::uint32_t relation, bool immediate_only = true);

std::uint32_t create_view(pg::Spi& spi, const std::string& name, const std::string& query, const std::string& mode);
void drop_view(pg::Spi& spi, std::uint32_t view);

}  // namespace ivm::catalog
