// The "file" backend: secrets in a plain owner-only JWK Set. For tests and demos only: the
// secrets sit on disk in clear, so it is read-only and never a fallback.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/vault.hpp"
#include "io/offload.hpp"

namespace la::core {

/// Reads a JWK Set of oct secrets (core::parse_secrets) on a worker thread.
class plain_file_vault final : public secret_vault {
public:
    /// Remembers the path; nothing is read until read_metadata() or load().
    plain_file_vault(std::filesystem::path file, io::worker_thread& worker)
        : file_(std::move(file)), worker_(&worker) {}

    std::string_view backend() const noexcept override { return "file"; }
    /// Generation 0 (a plain file has no counter); the entries the file lists.
    io::task<expected<vault_metadata, std::string>> read_metadata() override;
    /// The file's secrets (the file is authoritative: `meta` is not consulted).
    io::task<expected<secret_set, std::string>> load(const vault_metadata& meta) override;
    /// Refused: the plain file is read-only.
    io::task<expected<void, std::string>> stage(std::span<const new_secret> added) override;
    /// Refused: the plain file is read-only.
    io::task<expected<void, std::string>> commit(const vault_metadata& next,
                                                 std::span<const new_secret> added) override;
    vault_health health() const override { return health_; }

private:
    std::filesystem::path file_;
    io::worker_thread* worker_;
    vault_health health_{true, "plain JWK Set file (tests and demos only)"};
};

}  // namespace la::core
