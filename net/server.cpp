#include "net/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "crypto/secure_buffer.hpp"
#include "io/ops.hpp"
#include "net/protocol.hpp"

namespace la::net {
namespace {

using namespace std::chrono_literals;

core::expected<sockaddr_un, std::string> unix_address(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& s = path.native();
    if (s.empty() || s.size() >= sizeof addr.sun_path)
        return core::unexpected<std::string>(path.string() + ": socket path is empty or too long");
    std::memcpy(addr.sun_path, s.data(), s.size());
    return addr;
}

// True when something accepts connections on `addr` (another agent is running).
bool someone_listens(const sockaddr_un& addr) {
    io::unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) return false;
    return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

// A refusal sent right after accept, best effort: the socket buffer of a new connection is empty,
// so a non-blocking send of one small frame does not fail for lack of room.
void refuse(int fd, core::status code, std::string_view why) {
    std::array<std::byte, 256> frame{};
    const std::size_t n = encode_error(frame, code, why);
    [[maybe_unused]] ssize_t sent = ::send(fd, frame.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
}

// Per-connection buffers: one request frame (plus slack for the next) in, a batch of answers out.
constexpr std::size_t in_capacity = max_wire_frame + 4096;
constexpr std::size_t out_capacity = 2 * max_wire_frame;

}  // namespace

core::expected<listener, std::string> listener::bind(const std::filesystem::path& path,
                                                     std::uint32_t mode, int backlog) {
    using err = core::unexpected<std::string>;
    auto addr = unix_address(path);
    if (!addr) return err(addr.error());
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return err(path.string() + ": exists and is not a socket; refusing to replace it");
        // A killed agent's socket keeps accepting for a few ms while the kernel tears its
        // io_uring down: give a quick restart a second before calling the socket live.
        bool live = someone_listens(*addr);
        for (int i = 0; live && i < 50; ++i) {
            ::usleep(20'000);
            live = someone_listens(*addr);
        }
        if (live)
            return err(path.string() + ": another process is listening on it (agent already running?)");
        ::unlink(path.c_str());  // stale socket of a previous run
    }
    listener l;
    l.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!l.fd_) return err(path.string() + ": socket: " + std::strerror(errno));
    if (::bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
        return err(path.string() + ": bind: " + std::strerror(errno));
    l.path_ = path;  // from here on the destructor removes the file
    if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0)
        return err(path.string() + ": chmod: " + std::strerror(errno));
    if (::listen(l.fd_.get(), backlog) != 0)
        return err(path.string() + ": listen: " + std::strerror(errno));
    return l;
}

listener::~listener() { close(); }

void listener::close() noexcept {
    if (!fd_) return;
    fd_.reset();
    if (!path_.empty()) ::unlink(path_.c_str());
}

server::server(server_options opts, core::engine& engine, status_provider status, admin_handler admin)
    : opts_(std::move(opts)), engine_(engine), status_(std::move(status)), admin_(std::move(admin)) {}

bool server::uid_allowed(uid_t uid, role r) const noexcept {
    auto in = [uid](const std::vector<uid_t>& v) { return std::find(v.begin(), v.end(), uid) != v.end(); };
    if (in(opts_.admin_uids)) return true;
    return r == role::validate && in(opts_.allowed_uids);
}

// A connection's registration with its listener's sweeper. Lives in the connection's frame.
struct server::watched {
    enum class waiting : std::uint8_t { nothing, recv, send };
    std::stop_source recv_stop;  // idle deadline or graceful stop: cancels the pending recv
    std::stop_source send_stop;  // batch deadline: cancels the pending send
    std::stop_token recv_token = recv_stop.get_token();
    std::stop_token send_token = send_stop.get_token();
    std::chrono::steady_clock::time_point deadline{};  // of the recv or send in progress
    waiting state = waiting::nothing;
    bool idle_expired = false;
    watched* prev = nullptr;
    watched* next = nullptr;
};

struct server::watch_list {
    const std::stop_token* stop = nullptr;  // the server's graceful stop
    watched* head = nullptr;
    bool accepting = true;

    void add(watched* w) noexcept {
        w->next = head;
        if (head != nullptr) head->prev = w;
        head = w;
    }
    void remove(watched* w) noexcept {
        if (w->prev != nullptr) w->prev->next = w->next;
        else head = w->next;
        if (w->next != nullptr) w->next->prev = w->prev;
    }
};

io::task<void> server::sweep(watch_list* watch) {
    // Deadlines are enforced within a quarter of idle_timeout (bounded to 5..250 ms).
    const auto period = std::clamp<std::chrono::milliseconds>(opts_.idle_timeout / 4, 5ms, 250ms);
    bool stopping = false;
    for (;;) {
        if (!stopping && watch->stop->stop_requested()) {
            stopping = true;
            // Reads are cancelled now; a connection that is sending drains once its send is done.
            for (watched* w = watch->head; w != nullptr; w = w->next) {
                if (w->state == watched::waiting::recv) w->recv_stop.request_stop();
            }
        }
        if (stopping && !watch->accepting && watch->head == nullptr) co_return;
        auto slept = co_await io::sleep_for(period, stopping ? nullptr : watch->stop);
        (void)slept;  // cancelled by the stop: handled at the top of the loop
        const auto now = std::chrono::steady_clock::now();
        for (watched* w = watch->head; w != nullptr; w = w->next) {
            if (w->state == watched::waiting::nothing || now < w->deadline) continue;
            if (w->state == watched::waiting::recv) {
                w->idle_expired = true;
                w->recv_stop.request_stop();  // the connection resumes on a later turn
            } else {
                w->send_stop.request_stop();
            }
        }
    }
}

io::task<void> server::serve(listener& l, role r, const std::stop_token* stop) {
    io::task_scope connections;
    watch_list watch;
    watch.stop = stop;
    connections.spawn(sweep(&watch));
    const io::op_options accept_opts{std::nullopt, stop};
    for (;;) {
        auto fd = co_await io::accept(l.fd(), accept_opts);
        if (!fd) {
            if (fd.error() == std::errc::operation_canceled) break;
            // EMFILE/ENFILE/ENOBUFS: back off instead of spinning; the backlog holds the peers.
            const std::chrono::milliseconds pause = 50ms;
            auto slept = co_await io::sleep_for(pause, stop);
            if (!slept && slept.error() == std::errc::operation_canceled) break;
            continue;
        }
        io::unique_fd conn(*fd);
        ++stats_.accepted;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            !uid_allowed(cred.uid, r)) {
            ++stats_.unauthorized;
            ++stats_.by_status[static_cast<std::size_t>(core::status::unauthorized)];
            refuse(conn.get(), core::status::unauthorized, "peer uid is not allowed on this socket");
            continue;
        }
        if (stats_.active >= opts_.max_connections) {
            ++stats_.busy_refusals;
            refuse(conn.get(), core::status::internal_error, "busy: too many connections");
            continue;
        }
        ++stats_.active;
        connections.spawn(connection(std::move(conn), r, &watch));
    }
    l.close();
    watch.accepting = false;
    co_await connections.join();
}

io::task<void> server::connection(io::unique_fd fd, role r, watch_list* watch) {
    // Allocated once per connection; the request loop below allocates nothing.
    auto in = std::make_unique<std::byte[]>(in_capacity);
    auto out = std::make_unique<std::byte[]>(out_capacity);
    watched me;
    watch->add(&me);
    std::size_t in_len = 0;
    bool closing = false;
    bool draining = false;  // stop requested: answer what has arrived, then close
    const io::op_options recv_opts{std::nullopt, &me.recv_token};
    const io::op_options send_opts{std::nullopt, &me.send_token};
    std::chrono::steady_clock::time_point partial_since{};  // first byte of an incomplete frame
    std::size_t admin_size = 0;

    for (;;) {
        // 1. Answer complete frames until the batch is full (room for a worst-case answer and
        //    at most max_pipeline answers): input views stay valid until the compaction below.
        std::size_t pos = 0;
        std::size_t out_len = 0;
        std::size_t queued = 0;
        bool batch_full = false;
        std::optional<crypto::secure_buffer> admin_request;  // an ADMIN frame's body, run below
        while (!closing) {
            if (out_capacity - out_len < max_wire_frame || queued >= opts_.max_pipeline) {
                batch_full = true;
                break;
            }
            frame_view frame{};
            const auto state = peek_frame(std::span(in.get() + pos, in_len - pos), frame);
            if (state == frame_state::need_more) break;
            if (state == frame_state::ready && r == role::admin &&
                frame.type == static_cast<std::uint8_t>(msg_type::admin) &&
                frame.version >= min_protocol_version && frame.version <= max_protocol_version) {
                // Runs after this batch's earlier answers are encoded, so replies stay in order.
                // Its payload may be a JWK Set of secrets: moved to secure memory, wiped here.
                ++stats_.requests;
                auto copy = crypto::secure_buffer::allocate(std::max<std::size_t>(frame.body.size(), 1));
                if (copy) {
                    std::memcpy(copy->data(), frame.body.data(), frame.body.size());
                    admin_request.emplace(std::move(*copy));
                    admin_size = frame.body.size();
                }
                crypto::secure_zero(in.get() + pos, frame.total_size);
                pos += frame.total_size;
                ++queued;
                if (!admin_request)
                    out_len += encode_error(std::span(out.get() + out_len, out_capacity - out_len),
                                            core::status::internal_error, "out of secure memory");
                batch_full = true;  // read nothing more until the reply is out
                break;
            }
            const std::size_t before = out_len;
            answer(state, frame, r, std::span(out.get() + out_len, out_capacity - out_len), out_len);
            if (state != frame_state::ready) {
                closing = true;  // framing is lost: nothing after this can be parsed
                break;
            }
            LA_CHECK(out_len > before);  // every encoder fits a worst-case answer in the room left
            pos += frame.total_size;
            ++queued;
        }
        if (pos > 0) {
            std::memmove(in.get(), in.get() + pos, in_len - pos);
            in_len -= pos;
        }
        if (admin_request) {
            const auto body = decode_admin(admin_request->bytes().first(admin_size));
            std::string reply;
            if (!body) {
                ++stats_.protocol_errors;
                reply = R"({"ok":false,"error":"malformed ADMIN request: expected a command name, a newline, then its payload"})";
            } else if (!admin_) {
                reply = R"({"ok":false,"error":"no admin commands on this agent"})";
            } else {
                reply = co_await admin_(body->op, body->payload);
            }
            admin_request.reset();
            const std::span<std::byte> dst(out.get() + out_len, out_capacity - out_len);
            std::size_t n = encode_admin_ok(dst, reply);
            if (n == 0) n = encode_error(dst, core::status::internal_error, "admin reply too large");
            out_len += n;
        }

        // 2. Send the batch, all of it within one idle_timeout (5 s while stopping): a peer
        //    that reads a byte now and then cannot hold the connection, nor delay a stop.
        if (out_len > 0) {
            const auto budget = draining
                                    ? std::min<std::chrono::milliseconds>(opts_.idle_timeout, 5s)
                                    : opts_.idle_timeout;
            me.deadline = std::chrono::steady_clock::now() + budget;
        }
        std::size_t sent_total = 0;
        while (sent_total < out_len) {
            me.state = watched::waiting::send;
            auto sent = co_await io::send(
                fd.get(), std::span(out.get() + sent_total, out_len - sent_total), send_opts);
            me.state = watched::waiting::nothing;
            if (!sent || *sent == 0) {
                closing = true;
                break;
            }
            sent_total += *sent;
        }
        if (closing) break;
        if (batch_full) continue;  // more complete frames may wait in the buffer
        if (draining) break;

        // 3. Read more. A frame never exceeds the buffer, so a full buffer means a parse bug.
        LA_CHECK(in_len < in_capacity);
        std::span<std::byte> space(in.get() + in_len, in_capacity - in_len);
        if (watch->stop->stop_requested()) {
            // Stopping (perhaps before this connection's first read): answer what the peer had
            // already sent, then close.
            draining = true;
            const ssize_t n = ::recv(fd.get(), space.data(), space.size(), MSG_DONTWAIT);
            if (n > 0) in_len += static_cast<std::size_t>(n);
            continue;
        }
        // An idle connection gets idle_timeout; a partial frame must complete within
        // idle_timeout of its first byte, so trickling bytes cannot hold the connection.
        const auto now = std::chrono::steady_clock::now();
        if (in_len == 0 || pos > 0) partial_since = {};  // a frame completed: the clock restarts
        if (in_len > 0 && partial_since == std::chrono::steady_clock::time_point{})
            partial_since = now;
        me.deadline = (in_len > 0 ? partial_since : now) + opts_.idle_timeout;
        me.state = watched::waiting::recv;
        auto got = co_await io::recv(fd.get(), space, recv_opts);
        me.state = watched::waiting::nothing;
        if (got && *got > 0) {
            in_len += *got;
            continue;
        }
        if (got) break;  // orderly close by the peer: complete frames were already answered
        if (got.error() != std::errc::operation_canceled) break;
        if (me.idle_expired) {
            ++stats_.idle_closed;
            break;
        }
        // Graceful stop: the loop answers what has arrived (see the stop check above).
    }
    watch->remove(&me);
    --stats_.active;
    ::shutdown(fd.get(), SHUT_RDWR);
}

void server::answer(frame_state state, const frame_view& frame, role r, std::span<std::byte> dst,
                    std::size_t& out_len) noexcept {
    std::size_t n = 0;
    if (state != frame_state::ready) {
        ++stats_.protocol_errors;
        n = state == frame_state::too_large
                ? encode_error(dst, core::status::too_large, "frame exceeds 16384 bytes")
                : encode_error(dst, core::status::malformed, "frame length below 2");
        out_len += n;
        return;
    }
    ++stats_.requests;
    if (frame.version < min_protocol_version || frame.version > max_protocol_version) {
        ++stats_.protocol_errors;
        out_len += encode_error(dst, core::status::unsupported_version, "unsupported protocol version");
        return;
    }
    switch (static_cast<msg_type>(frame.type)) {
        case msg_type::validate: {
            auto body = decode_validate(frame.body);
            if (body) {
                const core::validation v =
                    engine_.validate({body->token, body->product, body->feature, body->instance});
                ++stats_.by_status[static_cast<std::size_t>(v.st) % stats_.by_status.size()];
                n = encode_result(dst, body->nonce, v);
            } else if (body.error() == std::errc::value_too_large) {
                const core::validation v{core::status::malformed, false, {}};
                ++stats_.by_status[static_cast<std::size_t>(v.st)];
                n = encode_result(dst, frame.body.first<nonce_size>(), v);
            } else {
                ++stats_.protocol_errors;
                n = encode_error(dst, core::status::malformed, "VALIDATE body lengths do not add up");
            }
            break;
        }
        case msg_type::hello: {
            auto hello = decode_hello(frame.body);
            if (!hello) {
                ++stats_.protocol_errors;
                n = encode_error(dst, core::status::malformed, "HELLO body must be 2 bytes");
            } else if (!hello_compatible(*hello)) {
                n = encode_error(dst, core::status::unsupported_version, "no common protocol version");
            } else {
                n = encode_hello_ok(dst);
            }
            break;
        }
        case msg_type::admin:
            // Admin connections never get here (connection() runs ADMIN frames itself).
            n = encode_error(dst, core::status::unauthorized, "ADMIN is served on the admin socket");
            break;
        case msg_type::status: {
            // Counters and the agent's identity are for operators: admin socket only. Not the
            // hot path: building the JSON may allocate.
            if (r != role::admin) {
                n = encode_error(dst, core::status::unauthorized,
                                 "STATUS is served on the admin socket");
                break;
            }
            const std::string json = status_ ? status_() : std::string("{}");
            n = encode_status_ok(dst, json);
            if (n == 0) n = encode_error(dst, core::status::internal_error, "status too large");
            break;
        }
        default:
            ++stats_.protocol_errors;
            n = encode_error(dst, core::status::malformed, "unknown message type");
            break;
    }
    out_len += n;
}

}  // namespace la::net
