#include "tpm/custody.hpp"

#include <fmt/format.h>

#include <cstring>

#include "core/json.hpp"
#include "core/plain_vault.hpp"
#include "crypto/sha256.hpp"
#include "tpm/agent_key.hpp"
#include "tpm/file_vault.hpp"
#include "tpm/vault.hpp"

namespace la::tpm {
namespace {

using err = core::unexpected<std::string>;

std::string date_json(std::int64_t t) {
    if (t == std::numeric_limits<std::int64_t>::min() || t == std::numeric_limits<std::int64_t>::max())
        return "null";
    return std::to_string(t);
}

std::string metadata_json(const core::vault_metadata& m, std::int64_t now) {
    std::string secrets;
    for (const core::secret_entry& e : m.secrets) {
        if (!secrets.empty()) secrets += ',';
        secrets += fmt::format(
            R"({{"version":{},"state":"{}","valid_from":{},"valid_until":{},"grace_until":{}}})",
            e.version, core::to_string(core::secret_set::state_at(e.meta, now)),
            date_json(e.meta.valid_from), date_json(e.meta.valid_until), date_json(e.meta.grace_until));
    }
    return fmt::format(R"("generation":{},"highest_version":{},"secrets":[{}])", m.generation,
                       m.highest_version, secrets);
}

core::kdf_kind kdf_of(const core::fallback_config& f) {
    return f.kdf == "pbkdf2-sha256" ? core::kdf_kind::pbkdf2_sha256 : core::kdf_kind::argon2id;
}

}  // namespace

std::array<std::byte, 32> seal_auth(std::string_view agent_id) {
    std::string input = "license-agent seal auth v1";
    input += '\0';
    input += agent_id;
    return crypto::sha256(std::as_bytes(std::span(input.data(), input.size())));
}

custody::custody(const core::agent_config& cfg, io::worker_thread& worker, const io::clock& clock)
    : cfg_(cfg), worker_(worker), clock_(clock) {}

custody::~custody() = default;

std::string_view custody::backend() const noexcept {
    return vault_ ? vault_->backend() : std::string_view("none");
}

std::unique_ptr<core::secret_vault> custody::make_file_vault() {
    return std::make_unique<core::encrypted_file_vault>(cfg_.fallback.file, cfg_.fallback.key_file,
                                                  kdf_of(cfg_.fallback), worker_);
}

io::task<core::expected<std::unique_ptr<custody>, std::string>> custody::open(
    const core::agent_config& cfg, io::worker_thread& worker, const io::clock& clock,
    custody_mode mode) {
    std::unique_ptr<custody> c(new custody(cfg, worker, clock));
    c->store_ = std::make_unique<core::state_store>(cfg.state_dir.string(), cfg.state_copies);
    const std::string& backend = cfg.secrets.backend;
    if (backend == "file") {
        c->reason_ = "configured (plain JWK Set: tests and demos only)";
        c->vault_ = std::make_unique<core::plain_file_vault>(cfg.secrets.file, worker);
        auto started = co_await c->start_vault(mode);
        if (!started) co_return err(std::move(started.error()));
        co_return std::move(c);
    }
    if (backend == "encrypted-file") {
        c->reason_ = "configured";
        c->vault_ = c->make_file_vault();
        auto started = co_await c->start_vault(mode);
        if (!started) co_return err(std::move(started.error()));
        co_return std::move(c);
    }
    auto started = co_await c->start_tpm(mode);
    if (started) {
        c->reason_ = "configured";
        co_return std::move(c);
    }
    if (!cfg.secrets.allow_fallback && mode == custody_mode::inspect) {
        c->reason_ = started.error();
        c->inspect_ = true;
        co_return std::move(c);
    }
    if (!cfg.secrets.allow_fallback)
        co_return err(fmt::format("{} (secrets.allow_fallback is off)", started.error()));
    c->reason_ = fmt::format("fallback: {}", started.error());
    c->manager_.reset();
    c->vault_.reset();
    c->vault_ = c->make_file_vault();
    auto fallback = co_await c->start_vault(mode);
    if (!fallback)
        co_return err(fmt::format("{}; the encrypted-file fallback failed too: {}", started.error(),
                                  fallback.error()));
    co_return std::move(c);
}

io::task<core::expected<void, std::string>> custody::start_tpm(custody_mode mode) {
    tpm_ = std::make_unique<tpm_thread>(
        tpm_options{cfg_.tpm.tcti, std::chrono::milliseconds(cfg_.tpm.timeout_ms)});
    auto pcr = parse_pcr_policy(cfg_.tpm.pcr_policy);
    if (!pcr) co_return err(fmt::format("tpm.pcr_policy \"{}\": {}", cfg_.tpm.pcr_policy, pcr.error().message()));
    tpm_vault_options o;
    o.tpm = tpm_.get();
    o.primary_handle = cfg_.tpm.primary_handle;
    o.nv_index = cfg_.tpm.nv_index;
    o.pcr = *pcr;
    o.state_dir = cfg_.state_dir.string();
    const auto auth = seal_auth(cfg_.agent_id);
    auto auth_buf = crypto::secure_buffer::allocate(auth.size());
    if (!auth_buf) co_return err("cannot allocate secure memory");
    std::memcpy(auth_buf->data(), auth.data(), auth.size());
    o.auth = std::move(*auth_buf);
    vault_ = std::make_unique<tpm_vault>(std::move(o));
    auto* v = static_cast<tpm_vault*>(vault_.get());
    co_await probe();
    if (!tpm_available_) co_return err(fmt::format("TPM at \"{}\" unavailable: {}", cfg_.tpm.tcti, tpm_detail_));
    if (mode == custody_mode::serve) {
        auto provisioned = co_await v->provision();
        if (!provisioned) co_return err(fmt::format("TPM provisioning failed: {}", provisioned.error()));
        auto key = co_await provision_agent_key(*tpm_, cfg_.tpm.primary_handle, cfg_.tpm.agent_key_handle);
        if (!key) co_return err(fmt::format("TPM agent key provisioning failed: {}", key.error().message()));
    }
    co_return co_await start_vault(mode);
}

io::task<core::expected<void, std::string>> custody::start_vault(custody_mode mode) {
    manager_ = std::make_unique<core::secret_manager>(*vault_, *store_, clock_);
    if (mode == custody_mode::provision) co_return core::expected<void, std::string>{};
    if (mode == custody_mode::serve && vault_->backend() == "encrypted-file") {
        // First start on the fallback: its key file and agent key (idempotent).
        auto made = co_await provision_file_backend();
        if (!made) co_return err(std::move(made.error()));
    }
    if (mode == custody_mode::inspect) {
        inspect_ = true;
        auto meta = co_await vault_->read_metadata();
        if (meta) {
            inspected_ = std::move(*meta);
        } else {
            inspect_notes_ = meta.error();
        }
        const core::state_load st = co_await store_->load();
        for (const std::string& p : st.problems) inspect_notes_ += (inspect_notes_.empty() ? "" : "; ") + p;
        if (st.doc && st.doc->vault.generation < inspected_.generation && st.doc->backend == vault_->backend())
            inspect_notes_ += fmt::format("{}state.json generation {} is older than the vault's {}",
                                          inspect_notes_.empty() ? "" : "; ", st.doc->vault.generation,
                                          inspected_.generation);
        co_return core::expected<void, std::string>{};
    }
    auto opened = co_await manager_->open();
    if (!opened) co_return err(std::move(opened.error()));
    secrets_ = std::move(*opened);
    co_return core::expected<void, std::string>{};
}

io::task<void> custody::probe() {
    if (!tpm_) co_return;
    auto r = co_await tpm_->call([](esys_session& s) -> core::result<std::uint32_t> {
        auto ctx = s.context();
        if (!ctx) return core::fail(ctx.error());
        TPMS_CAPABILITY_DATA* raw = nullptr;
        TPMI_YES_NO more = TPM2_NO;
        const TSS2_RC rc = Esys_GetCapability(*ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                              TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1,
                                              &more, &raw);
        esys_ptr<TPMS_CAPABILITY_DATA> data(raw);
        if (rc != TSS2_RC_SUCCESS) return fail_rc(rc);
        if (data->data.tpmProperties.count < 1) return core::fail(std::errc::protocol_error);
        return data->data.tpmProperties.tpmProperty[0].value;
    });
    tpm_available_ = r.has_value();
    if (r) {
        char vendor[5] = {};
        for (int i = 0; i < 4; ++i) {
            const char c = static_cast<char>((*r >> (24 - 8 * i)) & 0xFF);
            vendor[i] = c >= 0x20 && c < 0x7F ? c : ' ';
        }
        tpm_detail_ = fmt::format("answering (manufacturer \"{}\")", vendor);
    } else if (r.error() == std::errc::timed_out) {
        tpm_detail_ = fmt::format("no answer within {} ms", cfg_.tpm.timeout_ms);
    } else {
        tpm_detail_ = r.error().message();
    }
}

io::task<core::expected<std::pair<bool, bool>, std::string>> custody::provision_file_backend() {
    auto* v = static_cast<core::encrypted_file_vault*>(vault_.get());
    auto key_file = co_await v->provision();
    if (!key_file) co_return err(std::move(key_file.error()));
    const std::string key_path = cfg_.fallback.key_file.string();
    const std::string agent_key_path = (cfg_.state_dir / "agent-key.enc").string();
    auto agent_key = co_await core::provision_file_agent_key(key_path, agent_key_path, kdf_of(cfg_.fallback),
                                                             worker_);
    if (!agent_key) co_return err(std::move(agent_key.error()));
    co_return std::pair<bool, bool>{*key_file, agent_key->created};
}

io::task<std::string> custody::provision_json() {
    std::string body;
    bool ok = true;
    if (vault_ && vault_->backend() == "tpm") {
        auto* v = static_cast<tpm_vault*>(vault_.get());
        auto p = co_await v->provision();
        auto key = co_await provision_agent_key(*tpm_, cfg_.tpm.primary_handle, cfg_.tpm.agent_key_handle);
        if (!p) {
            ok = false;
            body = fmt::format(R"("error":{})", core::json::quote(p.error()));
        } else if (!key) {
            ok = false;
            body = fmt::format(R"("error":{})", core::json::quote("agent key: " + key.error().message()));
        } else {
            body = fmt::format(
                R"("backend":"tpm","tpm":{},"agent_key_handle":"0x{:08x}","agent_key":"{}")",
                core::json::quote(p->describe()), cfg_.tpm.agent_key_handle,
                key->created ? "created" : "reused");
        }
    } else if (vault_ && vault_->backend() == "encrypted-file") {
        auto made = co_await provision_file_backend();
        if (!made) {
            ok = false;
            body = fmt::format(R"("error":{})", core::json::quote(made.error()));
        } else {
            body = fmt::format(R"("backend":"encrypted-file","key_file":{},"key":"{}","agent_key":"{}")",
                               core::json::quote(cfg_.fallback.key_file.string()),
                               made->first ? "created" : "reused", made->second ? "created" : "reused");
        }
    } else {
        body = R"("backend":"file","note":"nothing to provision for the plain file backend")";
    }
    co_return fmt::format(R"({{"ok":{},{}}})", ok ? "true" : "false", body);
}

io::task<core::expected<core::secret_set, std::string>> custody::import(std::span<char> jwks,
                                                                      std::string_view source) {
    auto added = core::parse_import(jwks, source);
    if (!added) co_return err(std::move(added.error()));
    const std::vector<core::new_secret>& list = *added;
    co_return co_await manager_->add(list);
}

io::task<core::expected<core::secret_set, std::string>> custody::reload() {
    co_return co_await manager_->reload();
}

std::string custody::status_json() const {
    const core::vault_metadata& meta = manager_ ? metadata() : inspected_;
    std::string tpm = "null";
    if (cfg_.secrets.backend == "tpm") {
        tpm = fmt::format(
            R"({{"tcti":{},"available":{},"detail":{},"primary_handle":"0x{:08x}","agent_key_handle":"0x{:08x}","nv_index":"0x{:08x}","pcr_policy":{}}})",
            core::json::quote(cfg_.tpm.tcti), tpm_available_ ? "true" : "false", core::json::quote(tpm_detail_),
            cfg_.tpm.primary_handle, cfg_.tpm.agent_key_handle, cfg_.tpm.nv_index,
            core::json::quote(cfg_.tpm.pcr_policy));
    }
    std::string notes;
    if (manager_ != nullptr && !inspect_) {
        for (const std::string& n : manager_->report().notes)
            notes += (notes.empty() ? "" : ",") + core::json::quote(n);
    }
    if (!inspect_notes_.empty()) notes += (notes.empty() ? "" : ",") + core::json::quote(inspect_notes_);
    const core::vault_health h = vault_ ? vault_->health() : core::vault_health{};
    return fmt::format(
        R"({{"backend":"{}","reason":{},"vault_available":{},"vault_detail":{},"tpm":{},"state":{{"outcome":"{}","notes":[{}]}},{}}})",
        backend(), core::json::quote(reason_), h.available ? "true" : "false", core::json::quote(h.detail), tpm,
        inspect_ ? "not reconciled (agent stopped; read only)"
        : manager_ ? core::to_string(manager_->report().outcome)
                   : "none",
        notes,
        metadata_json(meta, clock_.now_unix()));
}

}  // namespace la::tpm
