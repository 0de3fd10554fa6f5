#include "tests/support/raw_wire.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace la::test {
namespace {

using clock_type = std::chrono::steady_clock;

void put_u16(bytes& b, std::size_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

void put_str(bytes& b, std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }

// Reads fields in order; any overrun sets `bad`.
struct reader {
    const bytes& b;
    std::size_t pos = 0;
    bool bad = false;

    bool need(std::size_t n) {
        if (bad || b.size() - pos < n) bad = true;
        return !bad;
    }
    std::uint8_t u8() { return need(1) ? b[pos++] : 0; }
    std::uint16_t u16() {
        if (!need(2)) return 0;
        const auto v = static_cast<std::uint16_t>((b[pos] << 8) | b[pos + 1]);
        pos += 2;
        return v;
    }
    std::int64_t i64() {
        if (!need(8)) return 0;
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = (v << 8) | b[pos++];
        return static_cast<std::int64_t>(v);
    }
    std::string str(std::size_t n) {
        if (!need(n)) return {};
        std::string s(reinterpret_cast<const char*>(b.data() + pos), n);
        pos += n;
        return s;
    }
    std::string str16() { return str(u16()); }
};

}  // namespace

bytes encode_frame(std::uint8_t version, std::uint8_t type, const bytes& body) {
    const std::size_t length = body.size() + 2;
    bytes f(6 + body.size());
    f[0] = static_cast<std::uint8_t>(length >> 24);
    f[1] = static_cast<std::uint8_t>(length >> 16);
    f[2] = static_cast<std::uint8_t>(length >> 8);
    f[3] = static_cast<std::uint8_t>(length);
    f[4] = version;
    f[5] = type;
    std::copy(body.begin(), body.end(), f.begin() + 6);
    return f;
}

bytes encode_validate(const nonce_t& nonce, std::string_view token, std::string_view product,
                      std::string_view feature, std::string_view instance, std::uint8_t version) {
    bytes body(nonce.begin(), nonce.end());
    put_u16(body, token.size());
    put_u16(body, product.size());
    put_u16(body, feature.size());
    put_u16(body, instance.size());
    put_str(body, token);
    put_str(body, product);
    put_str(body, feature);
    put_str(body, instance);
    return encode_frame(version, t_validate, body);
}

nonce_t make_nonce(std::uint64_t a, std::uint64_t b) {
    nonce_t n{};
    for (int i = 0; i < 8; ++i) {
        n[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(a >> (56 - 8 * i));
        n[static_cast<std::size_t>(8 + i)] = static_cast<std::uint8_t>(b >> (56 - 8 * i));
    }
    return n;
}

std::optional<wire_result> decode_result(const bytes& body) {
    reader r{body};
    wire_result out;
    if (!r.need(16)) return std::nullopt;
    std::memcpy(out.nonce.data(), body.data(), 16);
    r.pos = 16;
    out.status = r.u8();
    out.lic_type = r.u8();
    out.kind = r.u8();
    out.flags = r.u8();
    out.expires_at = r.i64();
    out.issued_at = r.i64();
    out.license_id = r.str16();
    out.product = r.str16();
    out.subject = r.str16();
    const std::uint16_t nf = r.u16();
    for (std::uint16_t i = 0; i < nf && !r.bad; ++i) out.features.push_back(r.str16());
    const std::uint16_t nm = r.u16();
    for (std::uint16_t i = 0; i < nm && !r.bad; ++i) {
        std::string k = r.str16();
        std::string v = r.str16();
        out.meta.emplace_back(std::move(k), std::move(v));
    }
    if (r.bad || r.pos != body.size()) return std::nullopt;
    return out;
}

std::optional<wire_error> decode_error(const bytes& body) {
    reader r{body};
    wire_error e;
    e.code = r.u8();
    e.min_version = r.u8();
    e.max_version = r.u8();
    e.message = r.str16();
    if (r.bad || r.pos != body.size()) return std::nullopt;
    return e;
}

raw_conn::raw_conn(const std::filesystem::path& socket) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& s = socket.native();
    if (s.size() >= sizeof addr.sun_path) {
        errno_ = ENAMETOOLONG;
        return;
    }
    std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        errno_ = errno;
        return;
    }
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        errno_ = errno;
        ::close(fd_);
        fd_ = -1;
    }
}

raw_conn::raw_conn(raw_conn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), errno_(other.errno_), buf_(std::move(other.buf_)),
      start_(other.start_) {}

raw_conn& raw_conn::operator=(raw_conn&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        errno_ = other.errno_;
        buf_ = std::move(other.buf_);
        start_ = other.start_;
    }
    return *this;
}

raw_conn::~raw_conn() { close(); }

void raw_conn::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

bool raw_conn::send_all(const bytes& data) { return send_all(data.data(), data.size()); }

bool raw_conn::send_all(const std::uint8_t* data, std::size_t n) {
    std::size_t off = 0;
    while (off < n) {
        const ssize_t w = ::send(fd_, data + off, n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += static_cast<std::size_t>(w);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            return false;
        }
    }
    return true;
}

read_status raw_conn::read_frame(wire_frame& out, std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        const std::size_t avail = buf_.size() - start_;
        if (avail >= 6) {
            const std::uint8_t* p = buf_.data() + start_;
            const std::uint32_t length = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
            if (length < 2 || length > (1u << 20)) return read_status::error;
            if (avail >= 4 + std::size_t{length}) {
                out.version = p[4];
                out.type = p[5];
                out.body.assign(p + 6, p + 4 + length);
                start_ += 4 + length;
                if (start_ == buf_.size()) {
                    buf_.clear();
                    start_ = 0;
                }
                return read_status::frame;
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        if (left.count() <= 0) return read_status::timeout;
        pollfd p{fd_, POLLIN, 0};
        const int pr = ::poll(&p, 1, static_cast<int>(left.count()));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;  // re-check the deadline
        std::uint8_t tmp[65536];
        const ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
        if (r > 0) {
            buf_.insert(buf_.end(), tmp, tmp + r);
        } else if (r == 0 || errno == ECONNRESET) {
            return read_status::closed;
        } else if (errno != EINTR && errno != EAGAIN) {
            return read_status::error;
        }
    }
}

bool raw_conn::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        const int pr = ::poll(&p, 1, static_cast<int>(left.count()));
        if (pr <= 0) continue;
        std::uint8_t tmp[4096];
        const ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
        if (r < 0 && errno != EINTR && errno != EAGAIN) return true;
    }
}

}  // namespace la::test
