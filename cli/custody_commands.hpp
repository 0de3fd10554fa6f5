// tpm-status, tpm-provision and secrets import: through the agent's admin socket when it runs,
// in-process on the configured backend when it does not.
#pragma once

#include <optional>
#include <string>

namespace la::cli {

/// One custody command as parsed by main.cpp.
struct custody_request {
    std::string command;                ///< "tpm-status", "tpm-provision" or "secrets-import"
    std::optional<std::string> config;  ///< --config FILE (needed when the agent is stopped)
    std::optional<std::string> socket;  ///< --socket: the admin socket
    std::string file;                   ///< secrets import: the JWK Set file ("-" = stdin)
    bool json = false;
    int timeout_ms = 0;                 ///< 0: 5000 for status, 60000 for changes
};

/// Runs it and prints the outcome. Exit codes: 0 ok, 1 refused or failed, 2 usage / config error,
/// 3 the agent could not be reached or broke the protocol.
int run_custody(const custody_request& r);

}  // namespace la::cli
