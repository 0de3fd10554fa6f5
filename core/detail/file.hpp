// Startup-time file reading for config and key files: mode checks and error text naming the file.
#pragma once

#include <filesystem>
#include <string>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"

namespace la::core::detail {

/// Whether a file may be readable/writable by group or others.
enum class file_access : bool { shared, owner_only };

/// Reads a regular file whole. owner_only refuses st_mode & 077 (checked with fstat on the
/// opened descriptor, so the file checked is the file read). Errors name the path.
expected<std::string, std::string> read_file(const std::filesystem::path& path, file_access access);

/// Reads an owner-only regular file into secure memory (for secret material). Errors name the path.
expected<crypto::secure_buffer, std::string> read_secret_file(const std::filesystem::path& path);

}  // namespace la::core::detail
