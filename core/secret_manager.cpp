#include "core/secret_manager.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "io/crash_point.hpp"

namespace la::core {
namespace {

using err = unexpected<std::string>;

bool by_version(const secret_entry& a, const secret_entry& b) { return a.version < b.version; }

}  // namespace

std::string_view to_string(state_outcome o) noexcept {
    switch (o) {
        case state_outcome::consistent: return "consistent";
        case state_outcome::created: return "created";
        case state_outcome::recovered: return "recovered";
        case state_outcome::rolled_back: return "rolled_back";
        case state_outcome::tampering: return "tampering";
        case state_outcome::backend_changed: return "backend_changed";
    }
    return "unknown";
}

expected<std::vector<new_secret>, std::string> parse_import(std::span<char> jwks, std::string_view source) {
    std::vector<new_secret> out;
    auto visited = for_each_secret(
        jwks, source,
        [&out](std::uint64_t version, std::span<const std::byte> key,
               const secret_meta& meta) -> expected<void, std::string> {
            for (const new_secret& s : out)
                if (s.version == version) return err("duplicate version");
            if (out.size() == secret_set::capacity)
                return err(fmt::format("more than {} secrets", secret_set::capacity));
            auto buf = crypto::secure_buffer::allocate(key.size());
            if (!buf) return err(fmt::format("cannot allocate secure memory: {}", buf.error().message()));
            std::memcpy(buf->data(), key.data(), key.size());
            out.push_back(new_secret{version, meta, std::move(*buf)});
            return {};
        });
    if (!visited) return err(std::move(visited.error()));
    if (out.empty()) return err(fmt::format("{}: no secrets to import", source));
    std::sort(out.begin(), out.end(),
              [](const new_secret& a, const new_secret& b) { return a.version < b.version; });
    return out;
}

state_document secret_manager::document(const vault_metadata& m) const {
    state_document d;
    d.backend = std::string(vault_.backend());
    d.vault = m;
    d.updated_at = clock_.now_unix();
    return d;
}

io::task<expected<secret_set, std::string>> secret_manager::open() {
    auto authoritative = co_await vault_.read_metadata();
    if (!authoritative) co_return err(std::move(authoritative.error()));
    auto reconciled = co_await reconcile(*authoritative);
    if (!reconciled) co_return err(std::move(reconciled.error()));
    current_ = std::move(*authoritative);
    co_return co_await vault_.load(current_);
}

// The vault is authoritative; state.json is its readable mirror, written before each commit.
// So a mirror one generation ahead is an interrupted change, and one behind (or contradicting
// the vault at the same generation) was put there by someone else.
io::task<expected<void, std::string>> secret_manager::reconcile(const vault_metadata& auth) {
    report_ = {};
    const state_load st = co_await store_.load();
    for (const std::string& p : st.problems) report_.notes.push_back(p);
    const std::string_view source = vault_.backend() == "tpm" ? "the TPM NV index" : vault_.backend();

    if (!st.doc) {
        if (st.problems.empty() && auth.generation == 0) {
            report_.outcome = state_outcome::created;
            report_.notes.push_back("state.json created");
        } else {
            report_.outcome = state_outcome::recovered;
            report_.notes.push_back(fmt::format("state.json rebuilt from {} (generation {})", source,
                                                auth.generation));
        }
    } else if (st.doc->backend != vault_.backend()) {
        report_.outcome = state_outcome::backend_changed;
        report_.notes.push_back(fmt::format("state.json was written for backend \"{}\"; now \"{}\"",
                                            st.doc->backend, vault_.backend()));
    } else {
        const std::uint64_t g = st.doc->vault.generation;
        const bool from_copy = st.from == state_load::origin::copy;
        if (from_copy) {
            report_.outcome = state_outcome::recovered;
            report_.notes.push_back(fmt::format(
                "state.json recovered from {} (generation {}) and {} (generation {})", st.copy_name,
                g, source, auth.generation));
        } else if (g == auth.generation && st.doc->vault == auth) {
            report_.outcome = state_outcome::consistent;
            co_return expected<void, std::string>{};
        } else if (g == auth.generation + 1) {
            report_.outcome = state_outcome::rolled_back;
            report_.notes.push_back(fmt::format(
                "state.json generation {} was never committed (interrupted change): back to {}", g,
                auth.generation));
        } else {
            report_.outcome = state_outcome::tampering;
            report_.notes.push_back(
                g < auth.generation
                    ? fmt::format("TAMPERING: state.json generation {} is older than {}'s counter {} "
                                  "(restored or rolled-back file); rewritten from {}",
                                  g, source, auth.generation, source)
                    : fmt::format("TAMPERING: state.json (generation {}) contradicts {} (generation {}); "
                                  "rewritten from {}",
                                  g, source, auth.generation, source));
        }
    }
    const state_document doc = document(auth);
    auto saved = co_await store_.save(doc);
    if (!saved) co_return err(fmt::format("cannot write state.json: {}", saved.error()));
    co_return expected<void, std::string>{};
}

io::task<expected<secret_set, std::string>> secret_manager::add(std::span<const new_secret> added) {
    const std::int64_t now = clock_.now_unix();
    vault_metadata next = current_;
    next.generation = current_.generation + 1;
    // Swept entries leave the list (highest_version keeps their numbers from coming back).
    std::erase_if(next.secrets, [now](const secret_entry& e) {
        return secret_set::state_at(e.meta, now) == secret_state::expired;
    });
    for (const new_secret& s : added) {
        if (s.key.size() != 32) co_return err(fmt::format("secret version {}: key must be 32 bytes", s.version));
        if (s.version <= next.highest_version)
            co_return err(fmt::format(
                "secret version {}: versions are never reused; the next must be above {}", s.version,
                next.highest_version));
        if (s.meta.grace_until < s.meta.valid_until)
            co_return err(fmt::format("secret version {}: grace_until is before valid_until", s.version));
        next.highest_version = s.version;
        next.secrets.push_back(secret_entry{s.version, s.meta});
    }
    if (next.secrets.size() > secret_set::capacity)
        co_return err(fmt::format("at most {} secrets may be kept; {} would be",
                                  secret_set::capacity, next.secrets.size()));
    std::sort(next.secrets.begin(), next.secrets.end(), by_version);

    auto staged = co_await vault_.stage(added);
    if (!staged) co_return err(std::move(staged.error()));
    io::crash_point("change.staged");

    const state_document doc = document(next);
    auto saved = co_await store_.save(doc);
    if (!saved) co_return err(fmt::format("cannot write state.json: {}", saved.error()));
    io::crash_point("change.state_written");

    auto committed = co_await vault_.commit(next, added);
    if (!committed) {
        // The mirror is one generation ahead; put it back now rather than at the next start.
        const state_document old = document(current_);
        auto restored = co_await store_.save(old);
        (void)restored;
        co_return err(std::move(committed.error()));
    }
    io::crash_point("change.committed");
    current_ = std::move(next);
    auto opened = co_await vault_.load(current_);
    if (!opened)
        co_return err(fmt::format("generation {} is committed, but opening its secrets failed: {}",
                                  current_.generation, opened.error()));
    co_return opened;
}

io::task<expected<secret_set, std::string>> secret_manager::reload() {
    co_return co_await vault_.load(current_);
}

}  // namespace la::core
