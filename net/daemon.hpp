// license-agent's wiring: config → keys → engine → listeners → signals, on one ring thread.
#pragma once

namespace la::net {

/// Runs the agent until SIGTERM/SIGINT; SIGHUP reloads the signing keys and secrets.
/// Returns the process exit code: 0 after a graceful stop, 2 for a bad command line or
/// configuration, 1 for any other startup failure.
int run_agent(int argc, char** argv);

}  // namespace la::net
