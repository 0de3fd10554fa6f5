// loadgen: drives a running license-agent over its Unix socket from one io_uring thread (our
// own executor), N connections each keeping D VALIDATE requests in flight, and reports
// throughput, a latency histogram and the answers' status breakdown.
//
// Cheap on purpose (it shares the machine with the agent): frames are encoded once per token
// and only their nonce is patched; every refill goes out in one send and every recv is parsed
// whole; one clock read per send batch and one per recv.
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.hpp"
#include "io/fd.hpp"
#include "io/ops.hpp"
#include "io/ring.hpp"
#include "io/scope.hpp"
#include "io/task.hpp"
#include "net/protocol.hpp"

namespace {

using namespace la;

std::uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Log-linear latency histogram in nanoseconds: exact below 64 ns, then 32 buckets per power of
// two (about 3 % resolution) up to 2^64; fixed memory, O(1) record.
class histogram {
public:
    void record(std::uint64_t v) noexcept {
        ++counts_[index(v)];
        ++total_;
        sum_ += v;
        max_ = std::max(max_, v);
    }
    std::uint64_t total() const noexcept { return total_; }
    std::uint64_t max() const noexcept { return max_; }
    double mean() const noexcept { return total_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(total_); }
    /// The upper edge of the bucket holding quantile q (0..1), capped at the exact max.
    std::uint64_t quantile(double q) const noexcept {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < counts_.size(); ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(upper(i), max_);
        }
        return max_;
    }

private:
    static constexpr unsigned sub_bits = 5;
    static constexpr std::uint64_t linear = std::uint64_t{1} << (sub_bits + 1);  // 64
    static constexpr std::size_t buckets = linear + (64 - sub_bits - 1) * (std::size_t{1} << sub_bits);

    static std::size_t index(std::uint64_t v) noexcept {
        if (v < linear) return static_cast<std::size_t>(v);
        const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(v));
        const unsigned shift = msb - sub_bits;  // v >> shift is in [32, 64)
        return static_cast<std::size_t>(linear + (shift - 1) * (std::uint64_t{1} << sub_bits) +
                                        ((v >> shift) - (std::uint64_t{1} << sub_bits)));
    }
    static std::uint64_t upper(std::size_t i) noexcept {
        if (i < linear) return i;
        const std::size_t k = i - linear;
        const std::size_t shift = k / (std::size_t{1} << sub_bits) + 1;
        const std::uint64_t mant = (k % (std::size_t{1} << sub_bits)) + (std::uint64_t{1} << sub_bits);
        return ((mant + 1) << shift) - 1;
    }

    std::array<std::uint64_t, buckets> counts_{};
    std::uint64_t total_ = 0, sum_ = 0, max_ = 0;
};

struct token_source {
    std::string path;
    unsigned weight = 1;
    std::vector<std::vector<std::byte>> frames;  // one encoded VALIDATE per token, nonce zero
    std::size_t cursor = 0;
    long current = 0;  // smooth weighted round-robin state
};

struct options {
    std::string socket;
    unsigned connections = 32;
    unsigned pipeline = 1;
    double duration = 10.0;
    double warmup = 1.0;
    std::string product, feature, instance;
    bool json = false;
    std::vector<token_source> sources;
};

constexpr std::size_t n_status = 16;

// Everything the connection coroutines share (one thread: no synchronisation).
struct shared {
    const options* opt = nullptr;
    std::vector<token_source>* sources = nullptr;
    long total_weight = 0;
    std::uint64_t window_start = 0, window_end = 0;
    bool stopping = false;
    histogram hist;
    std::uint64_t answers = 0;     // whole run
    std::uint64_t measured = 0;    // answered inside the window
    std::uint64_t error_frames = 0, bad_nonce = 0, conn_failures = 0;
    std::array<std::uint64_t, n_status> by_status{};

    // Picks the next frame template: smooth weighted round-robin over sources, each cycling.
    const std::vector<std::byte>& next_frame() noexcept {
        token_source* best = nullptr;
        for (auto& s : *sources) {
            s.current += s.weight;
            if (best == nullptr || s.current > best->current) best = &s;
        }
        best->current -= total_weight;
        const auto& f = best->frames[best->cursor];
        if (++best->cursor == best->frames.size()) best->cursor = 0;
        return f;
    }
};

struct connection {
    io::unique_fd fd;
    std::vector<std::byte> out, in;
    std::vector<std::uint64_t> sent_at;  // by sequence number % pipeline
    std::uint64_t next_seq = 0, next_answer = 0;
};

std::uint64_t nonce_seq(std::span<const std::byte, net::nonce_size> nonce) noexcept {
    std::uint64_t v = 0;
    std::memcpy(&v, nonce.data(), sizeof v);
    return v;
}

// One connection's request loop: refill to D in flight with one send, read once, parse all.
io::task<void> run_connection(shared* g, connection* c) {
    const std::size_t depth = g->opt->pipeline;
    const io::op_options recv_opts{std::chrono::seconds(10), nullptr};
    const io::op_options send_opts{std::chrono::seconds(10), nullptr};
    std::size_t in_len = 0;
    for (;;) {
        std::size_t out_len = 0;
        if (!g->stopping) {
            const std::uint64_t t = now_ns();
            while (c->next_seq - c->next_answer < depth) {
                const auto& f = g->next_frame();
                std::memcpy(c->out.data() + out_len, f.data(), f.size());
                // The nonce (body offset 0) carries the sequence number, checked on the answer.
                std::memcpy(c->out.data() + out_len + net::frame_header_size, &c->next_seq, sizeof c->next_seq);
                out_len += f.size();
                c->sent_at[c->next_seq % depth] = t;
                ++c->next_seq;
            }
        }
        std::size_t sent_total = 0;
        while (sent_total < out_len) {
            auto sent = co_await io::send(c->fd.get(), std::span(c->out.data() + sent_total, out_len - sent_total),
                                          send_opts);
            if (!sent || *sent == 0) {
                ++g->conn_failures;
                co_return;
            }
            sent_total += *sent;
        }
        if (c->next_seq == c->next_answer) co_return;  // stopping and drained

        auto got = co_await io::recv(c->fd.get(), std::span(c->in.data() + in_len, c->in.size() - in_len), recv_opts);
        if (!got || *got == 0) {
            ++g->conn_failures;
            co_return;
        }
        in_len += *got;
        const std::uint64_t t = now_ns();
        const bool in_window = t >= g->window_start && t < g->window_end;
        std::size_t pos = 0;
        for (;;) {
            net::frame_view f{};
            const auto st = net::peek_frame(std::span(c->in.data() + pos, in_len - pos), f);
            if (st == net::frame_state::need_more) break;
            if (st != net::frame_state::ready) {
                ++g->conn_failures;
                co_return;
            }
            pos += f.total_size;
            ++g->answers;
            const std::uint64_t seq = c->next_answer++;
            if (f.type == static_cast<std::uint8_t>(net::msg_type::result) && f.body.size() >= net::result_fixed_size) {
                if (nonce_seq(f.body.first<net::nonce_size>()) != seq) ++g->bad_nonce;
                const auto code = static_cast<std::size_t>(f.body[net::nonce_size]);
                ++g->by_status[std::min(code, n_status - 1)];
            } else {
                ++g->error_frames;
            }
            if (in_window) {
                g->hist.record(t - c->sent_at[seq % depth]);
                ++g->measured;
            }
        }
        if (pos > 0) {
            std::memmove(c->in.data(), c->in.data() + pos, in_len - pos);
            in_len -= pos;
        }
        if (t >= g->window_end) g->stopping = true;
    }
}

io::task<void> run_all(shared* g, std::vector<connection>* conns) {
    io::task_scope scope;
    for (auto& c : *conns) scope.spawn(run_connection(g, &c));
    co_await scope.join();
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "loadgen: %s\n"
                 "usage: loadgen --socket PATH --tokens FILE[:WEIGHT] [--tokens FILE[:WEIGHT] ...]\n"
                 "               [--connections N=32] [--pipeline D=1] [--duration S=10] [--warmup S=1]\n"
                 "               [--product P] [--feature F] [--instance I] [--json]\n"
                 "FILE holds one token per line; tokens are sent in order, files mixed by WEIGHT.\n",
                 why);
    std::exit(2);
}

bool load_source(token_source& s, const options& o) {
    std::ifstream f(s.path);
    if (!f) return false;
    std::string line;
    std::vector<std::byte> buf(net::max_wire_frame);
    const std::array<std::byte, net::nonce_size> nonce{};
    while (std::getline(f, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty()) continue;
        const std::size_t n = net::encode_validate(buf, nonce, line, o.product, o.feature, o.instance);
        if (n == 0) return false;
        s.frames.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    return !s.frames.empty();
}

options parse_args(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) usage("missing value");
            return argv[++i];
        };
        if (a == "--socket") o.socket = value();
        else if (a == "--connections") o.connections = static_cast<unsigned>(std::stoul(value()));
        else if (a == "--pipeline") o.pipeline = static_cast<unsigned>(std::stoul(value()));
        else if (a == "--duration") o.duration = std::stod(value());
        else if (a == "--warmup") o.warmup = std::stod(value());
        else if (a == "--product") o.product = value();
        else if (a == "--feature") o.feature = value();
        else if (a == "--instance") o.instance = value();
        else if (a == "--json") o.json = true;
        else if (a == "--tokens") {
            token_source s;
            s.path = value();
            const auto colon = s.path.rfind(':');
            if (colon != std::string::npos && colon + 1 < s.path.size() &&
                s.path.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
                s.weight = static_cast<unsigned>(std::stoul(s.path.substr(colon + 1)));
                s.path.resize(colon);
            }
            if (s.weight == 0) usage("a weight must be positive");
            o.sources.push_back(std::move(s));
        } else if (a == "--help" || a == "-h") usage("help");
        else usage(("unknown argument " + std::string(a)).c_str());
    }
    if (o.socket.empty()) usage("--socket is required");
    if (o.sources.empty()) usage("at least one --tokens FILE is required");
    if (o.connections == 0 || o.pipeline == 0 || o.duration <= 0) usage("connections, pipeline, duration must be > 0");
    return o;
}

io::unique_fd connect_unix(const std::string& path) {
    io::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (!fd || path.size() >= sizeof addr.sun_path) return io::unique_fd();
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return io::unique_fd();
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    options opt = parse_args(argc, argv);
    shared g;
    g.opt = &opt;
    g.sources = &opt.sources;
    std::size_t largest = 0;
    for (auto& s : opt.sources) {
        if (!load_source(s, opt)) {
            std::fprintf(stderr, "loadgen: %s: unreadable, empty, or a token too large\n", s.path.c_str());
            return 2;
        }
        for (const auto& f : s.frames) largest = std::max(largest, f.size());
        g.total_weight += s.weight;
    }

    std::vector<connection> conns(opt.connections);
    for (auto& c : conns) {
        c.fd = connect_unix(opt.socket);
        if (!c.fd) {
            std::fprintf(stderr, "loadgen: connect %s: %s\n", opt.socket.c_str(), std::strerror(errno));
            return 1;
        }
        c.out.resize(largest * opt.pipeline);
        // Answers are smaller than a max frame; room for a whole window of them plus a partial one.
        c.in.resize(net::max_wire_frame * (opt.pipeline + 1));
        c.sent_at.resize(opt.pipeline);
    }

    auto ring = io::ring::create();
    if (!ring) {
        std::fprintf(stderr, "loadgen: io_uring: %s\n", ring.error().message().c_str());
        return 1;
    }
    const std::uint64_t start = now_ns();
    g.window_start = start + static_cast<std::uint64_t>(opt.warmup * 1e9);
    g.window_end = g.window_start + static_cast<std::uint64_t>(opt.duration * 1e9);
    (*ring)->run(run_all(&g, &conns));

    const double secs = opt.duration;
    const double rps = static_cast<double>(g.measured) / secs;
    const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
    const std::uint64_t not_valid = g.answers - g.by_status[0] - g.error_frames;
    const std::uint64_t errors = not_valid + g.error_frames + g.bad_nonce + g.conn_failures;
    const auto& h = g.hist;
    if (opt.json) {
        std::printf("{\"connections\":%u,\"pipeline\":%u,\"duration_s\":%.3f,\"requests\":%llu,"
                    "\"requests_per_s\":%.0f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
                    "\"max_us\":%.2f,\"mean_us\":%.2f,\"answers_total\":%llu,\"errors\":%llu,"
                    "\"error_frames\":%llu,\"bad_nonce\":%llu,\"connection_failures\":%llu,\"status\":{",
                    opt.connections, opt.pipeline, secs, static_cast<unsigned long long>(g.measured), rps,
                    us(h.quantile(0.5)), us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()),
                    h.mean() / 1000.0, static_cast<unsigned long long>(g.answers),
                    static_cast<unsigned long long>(errors), static_cast<unsigned long long>(g.error_frames),
                    static_cast<unsigned long long>(g.bad_nonce), static_cast<unsigned long long>(g.conn_failures));
        bool first = true;
        for (std::size_t i = 0; i < n_status; ++i) {
            if (g.by_status[i] == 0) continue;
            const auto name = core::to_string(static_cast<core::status>(i));
            std::printf("%s\"%.*s\":%llu", first ? "" : ",", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(g.by_status[i]));
            first = false;
        }
        std::printf("}}\n");
    } else {
        std::printf("connections %u, pipeline %u, %.1f s measured after %.1f s warm-up\n", opt.connections,
                    opt.pipeline, secs, opt.warmup);
        std::printf("requests/s  %.0f  (%llu answers in the window)\n", rps,
                    static_cast<unsigned long long>(g.measured));
        std::printf("latency us  p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", us(h.quantile(0.5)),
                    us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()), h.mean() / 1000.0);
        std::printf("errors      %llu (not valid %llu, ERROR frames %llu, bad nonce %llu, connection failures %llu)\n",
                    static_cast<unsigned long long>(errors), static_cast<unsigned long long>(not_valid),
                    static_cast<unsigned long long>(g.error_frames), static_cast<unsigned long long>(g.bad_nonce),
                    static_cast<unsigned long long>(g.conn_failures));
        std::printf("status     ");
        for (std::size_t i = 0; i < n_status; ++i) {
            if (g.by_status[i] == 0) continue;
            const auto name = core::to_string(static_cast<core::status>(i));
            std::printf(" %.*s=%llu", static_cast<int>(name.size()), name.data(),
                        static_cast<unsigned long long>(g.by_status[i]));
        }
        std::printf("\n");
    }
    return errors == 0 ? 0 : 3;
}
