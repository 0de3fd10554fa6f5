// state.json: the readable mirror of the vault metadata (see core/vault.hpp), written so that a
// crash or a corrupt file never leaves the agent without a usable copy. Format (format 1):
//   {"format":1,"backend":"tpm","generation":7,"highest_version":3,"updated_at":1764000000,
//    "secrets":[{"version":3,"state":"active","valid_from":null,"valid_until":...,
//                "grace_until":...}],"checksum":"<sha256 hex>"}
// "checksum" is the last member; it is the SHA-256 (lowercase hex) of the document with that
// member removed, i.e. of every byte before `,"checksum":` followed by `}`. Readers ignore
// members they do not know, so a newer writer may add some without bumping "format"; it bumps
// "format" only for changes an older reader must not misread. Never holds key material.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/vault.hpp"
#include "io/task.hpp"

namespace la::core {

/// What state.json records. Its generation is vault.generation.
struct state_document {
    std::string backend;        ///< "tpm", "encrypted-file" or "file" (valid UTF-8)
    vault_metadata vault;       ///< generation, highest version and the secrets' dates and states
    std::int64_t updated_at = 0;  ///< Unix seconds of the save

    friend bool operator==(const state_document&, const state_document&) = default;
};

/// The only format this version writes and reads.
inline constexpr std::int64_t state_format = 1;
/// Larger state files are refused as corrupt (the real ones are a few KiB).
inline constexpr std::size_t max_state_bytes = 256 * 1024;

/// The document as compact JSON with its checksum, newline-terminated. Dates at their
/// secret_meta defaults (valid_from = int64 min, valid_until/grace_until = int64 max) are null.
std::string encode_state(const state_document& doc);

/// Parses and verifies a document. Strict: errors are short texts such as "checksum mismatch",
/// "missing checksum", "unsupported format 2", "not JSON (syntax near byte 40)", "empty",
/// "\"generation\" must be an unsigned integer", "secrets[1]: unknown state \"gone\"".
/// Unknown members (root or secret entries) are ignored; absent or null dates mean the default.
expected<state_document, std::string> decode_state(std::string_view text);

/// Outcome of state_store::load().
struct state_load {
    /// Where the document came from.
    enum class origin { main, copy, none };
    std::optional<state_document> doc;  ///< empty when nothing usable exists
    origin from = origin::none;
    std::string copy_name;              ///< "state.json.<k>" when from == copy
    /// "<file>: <what was wrong>" for each file that exists but was unusable, plus
    /// "state.json: missing" when only copies exist. Empty on a first start (no file at all).
    std::vector<std::string> problems;
};

/// state.json and its rotating copies state.json.<generation % copies> in one directory, so the
/// last `copies` generations stay on disk without the directory ever being listed. Every file
/// operation goes through the io_uring ops of the calling thread's ring.
/// Lifetime: outlives the tasks it returns. Thread: the ring thread that awaits them.
class state_store {
public:
    /// Files live in `dir` (which must exist); copies is at least 1.
    explicit state_store(std::string dir, std::size_t copies = 5);

    /// Writes state.json atomically (mode 0600), then state.json.<generation % copies> the
    /// same way. `doc` must outlive the await. Errors name the file and the failing errno; after
    /// an error state.json holds the previous document, or the new one when only the copy or a
    /// directory sync failed.
    io::task<expected<void, std::string>> save(const state_document& doc);

    /// state.json if it decodes, else the decodable copy with the highest generation, else none.
    io::task<state_load> load();

    /// The directory given at construction.
    const std::string& dir() const noexcept { return dir_; }
    /// Number of rotating copies.
    std::size_t copies() const noexcept { return copies_; }

private:
    std::string dir_;
    std::size_t copies_;
};

}  // namespace la::core
