// Secret custody as configured: picks the backend ([secrets] backend, allow_fallback), opens the
// TPM on its thread, provisions it, and runs the secret manager over the vault and state.json.
// The agent and license-agent-cli (when the agent is stopped) both go through this.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "core/config.hpp"
#include "core/result.hpp"
#include "core/secret_manager.hpp"
#include "core/state_file.hpp"
#include "core/vault.hpp"
#include "io/clock.hpp"
#include "io/offload.hpp"
#include "io/task.hpp"
#include "tpm/tpm_thread.hpp"

namespace la::tpm {

/// What open() should do beyond choosing the backend.
enum class custody_mode : std::uint8_t {
    serve,    ///< provision when needed, reconcile state.json, open the secrets (the agent)
    inspect,  ///< read only: no provisioning, no writes, no unsealing (tpm-status when stopped)
    provision,  ///< only reach the backend: provision_json() does the rest (tpm-provision when stopped)
};

/// The configured secret custody. Thread: one ring thread (the TPM work runs on its own thread).
class custody {
public:
    ~custody();
    custody(const custody&) = delete;
    custody& operator=(const custody&) = delete;

    /// Chooses and opens the backend. With backend "tpm" and allow_fallback, a TPM that cannot
    /// be reached, provisioned or unsealed at start hands over to the encrypted-file backend
    /// (reason() says why). Errors: text for the log (no fallback allowed, or it failed too).
    static io::task<core::expected<std::unique_ptr<custody>, std::string>> open(
        const core::agent_config& cfg, io::worker_thread& worker, const io::clock& clock,
        custody_mode mode);

    /// The secrets opened by open() (serve mode); moved out once.
    core::secret_set take_secrets() noexcept { return std::move(secrets_); }

    /// Idempotent provisioning of the configured backend; a JSON report for the CLI.
    io::task<std::string> provision_json();

    /// Seals the secrets of a JWK Set into the backend (see core::parse_import). On success the
    /// new full set is returned for the engine. Errors: text naming the key or the failed step.
    io::task<core::expected<core::secret_set, std::string>> import(std::span<char> jwks,
                                                                  std::string_view source);

    /// Re-opens the current secrets (SIGHUP).
    io::task<core::expected<core::secret_set, std::string>> reload();

    /// Asks the TPM a cheap question (within tpm.timeout_ms) to refresh its health.
    io::task<void> probe();

    /// tpm-status as a JSON object (no secrets): backend, reason, TPM health and objects, the
    /// committed metadata, the start-up state.json outcome.
    std::string status_json() const;

    /// "tpm", "encrypted-file" or "file".
    std::string_view backend() const noexcept;
    /// Why this backend (configured, or the fallback's cause).
    const std::string& reason() const noexcept { return reason_; }
    /// For a stopping process: waits for the TPM call in progress; false when it outlives
    /// tpm.timeout_ms (the TPM hangs: destroying this custody would wait for it).
    bool wait_tpm_idle() const noexcept { return !tpm_ || tpm_->wait_idle(); }
    /// True when the TPM answered its last call (false without a TPM).
    bool tpm_available() const noexcept { return tpm_available_; }
    const core::secret_manager& manager() const noexcept { return *manager_; }
    /// The committed metadata (inspect mode: as read, unreconciled).
    const core::vault_metadata& metadata() const noexcept {
        return inspect_ ? inspected_ : manager_->metadata();
    }

private:
    custody(const core::agent_config& cfg, io::worker_thread& worker, const io::clock& clock);
    io::task<core::expected<void, std::string>> start_tpm(custody_mode mode);
    /// Runs the manager over vault_ (set by the caller: no non-trivial argument in a co_await).
    io::task<core::expected<void, std::string>> start_vault(custody_mode mode);
    std::unique_ptr<core::secret_vault> make_file_vault();
    /// The fallback's key file and agent key; (key file created, agent key created).
    io::task<core::expected<std::pair<bool, bool>, std::string>> provision_file_backend();

    const core::agent_config& cfg_;
    io::worker_thread& worker_;
    const io::clock& clock_;
    std::unique_ptr<tpm_thread> tpm_;
    std::unique_ptr<core::secret_vault> vault_;
    std::unique_ptr<core::state_store> store_;
    std::unique_ptr<core::secret_manager> manager_;
    core::secret_set secrets_;
    core::vault_metadata inspected_;  // inspect mode: what the vault says, unreconciled
    std::string inspect_notes_;
    std::string reason_;
    std::string tpm_detail_;
    bool tpm_available_ = false;
    bool inspect_ = false;
};

/// The auth value of sealed objects: bound to the agent id. Not a secret (the TPM binding and the
/// PCR policy are the protection); it keeps another agent's objects from unsealing ours by mistake.
std::array<std::byte, 32> seal_auth(std::string_view agent_id);

}  // namespace la::tpm
