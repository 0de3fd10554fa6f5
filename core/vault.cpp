#include "core/vault.hpp"

namespace la::core {

secret_vault::~secret_vault() = default;

}  // namespace la::core
