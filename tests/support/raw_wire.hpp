// Byte-level client for protocol v1 (docs/protocol.md), written independently of net/protocol
// so tests can send exactly the bytes they want, including broken ones.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace la::test {

using bytes = std::vector<std::uint8_t>;
using nonce_t = std::array<std::uint8_t, 16>;

/// Message types on the wire.
enum : std::uint8_t {
    t_hello = 0x01,
    t_validate = 0x02,
    t_status = 0x03,
    t_hello_ok = 0x81,
    t_result = 0x82,
    t_status_ok = 0x83,
    t_error = 0xFF,
};

/// One received frame.
struct wire_frame {
    std::uint8_t version = 0;
    std::uint8_t type = 0;
    bytes body;
};

/// A decoded RESULT body.
struct wire_result {
    nonce_t nonce{};
    std::uint8_t status = 0xFF, lic_type = 0, kind = 0, flags = 0;
    std::int64_t expires_at = 0, issued_at = 0;
    std::string license_id, product, subject;
    std::vector<std::string> features;
    std::vector<std::pair<std::string, std::string>> meta;
};

/// A decoded ERROR body.
struct wire_error {
    std::uint8_t code = 0xFF, min_version = 0, max_version = 0;
    std::string message;
};

/// A frame: u32 length | version | type | body.
bytes encode_frame(std::uint8_t version, std::uint8_t type, const bytes& body);
/// A VALIDATE frame.
bytes encode_validate(const nonce_t& nonce, std::string_view token, std::string_view product = {},
                      std::string_view feature = {}, std::string_view instance = {},
                      std::uint8_t version = 1);
/// A nonce whose first 8 bytes hold `a` and last 8 hold `b` (big-endian), easy to check in order.
nonce_t make_nonce(std::uint64_t a, std::uint64_t b);
/// Decodes a RESULT body; nullopt if its fields don't fill the body exactly.
std::optional<wire_result> decode_result(const bytes& body);
/// Decodes an ERROR body; nullopt if malformed.
std::optional<wire_error> decode_error(const bytes& body);

/// Outcome of a read.
enum class read_status { frame, closed, timeout, error };

/// A client connection on a Unix stream socket, with a read buffer.
class raw_conn {
public:
    raw_conn() = default;
    /// Connects (blocking); check ok().
    explicit raw_conn(const std::filesystem::path& socket);
    raw_conn(raw_conn&& other) noexcept;
    raw_conn& operator=(raw_conn&& other) noexcept;
    raw_conn(const raw_conn&) = delete;
    raw_conn& operator=(const raw_conn&) = delete;
    ~raw_conn();

    bool ok() const noexcept { return fd_ >= 0; }
    int fd() const noexcept { return fd_; }
    /// errno of a failed connect.
    int connect_errno() const noexcept { return errno_; }
    /// Writes everything (MSG_NOSIGNAL); false on EPIPE/ECONNRESET or another error.
    bool send_all(const bytes& data);
    bool send_all(const std::uint8_t* data, std::size_t n);
    /// Reads the next complete frame within `timeout`.
    read_status read_frame(wire_frame& out, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// True if the peer closes the connection (EOF or reset) within `timeout`; data before the
    /// close is discarded.
    bool wait_closed(std::chrono::milliseconds timeout);
    /// Closes now.
    void close();

private:
    int fd_ = -1;
    int errno_ = 0;
    bytes buf_;
    std::size_t start_ = 0;
};

}  // namespace la::test
