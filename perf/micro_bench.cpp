// In-process cost of each step of the validation hot path, from base64url to a whole RESULT
// frame, each with its heap allocations per operation (expected: 0). Tokens, keys and secrets
// are minted at startup by tests/support/mint.py (PyJWT / jwcrypto) into a temp directory.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine.hpp"
#include "core/keys.hpp"
#include "crypto/aes_gcm.hpp"
#include "crypto/base64url.hpp"
#include "crypto/ed25519.hpp"
#include "crypto/siphash.hpp"
#include "io/clock.hpp"
#include "net/protocol.hpp"
#include "tests/support/alloc_counter.hpp"

namespace {

namespace fs = std::filesystem;
using la::core::status;

constexpr std::string_view issuer = "https://licenses.example.com";
constexpr std::string_view product = "pos-suite";
constexpr std::string_view feature = "loyalty";

[[noreturn]] void die(const std::string& why) {
    std::fprintf(stderr, "micro_bench: %s\n", why.c_str());
    std::exit(1);
}

// Runs a shell command and returns its stdout without the trailing newline.
std::string capture(const std::string& cmd) {
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) die("popen failed: " + cmd);
    std::string out;
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    if (::pclose(p) != 0) die("command failed: " + cmd);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// A realistic license: ten features, two versions, four meta entries, one year left.
std::string realistic_claims() {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    return "{\"jti\":\"LIC-2026-000123\",\"iss\":\"" + std::string(issuer) +
           "\",\"sub\":\"customer-000042\",\"product\":\"" + std::string(product) +
           "\",\"lic_type\":\"subscription\",\"iat\":" + std::to_string(now) +
           ",\"exp\":" + std::to_string(now + 365 * 86400) +
           ",\"features\":[\"sales\",\"inventory\",\"loyalty\",\"gift-cards\",\"reports\","
           "\"multi-store\",\"kitchen-display\",\"online-orders\",\"payroll\",\"analytics\"],"
           "\"versions\":[\"17.0\",\"17.1\"],"
           "\"meta\":{\"seats\":\"12\",\"tier\":\"gold\",\"region\":\"eu-west\",\"reseller\":\"acme-pos\"}}";
}

// Positions of the '.' separators of a compact token.
std::vector<std::size_t> dots_of(std::string_view tok) {
    std::vector<std::size_t> d;
    for (std::size_t i = 0; i < tok.size(); ++i)
        if (tok[i] == '.') d.push_back(i);
    return d;
}

std::vector<std::byte> b64(std::string_view s) {
    std::vector<std::byte> out(la::crypto::base64url_decoded_max(s.size()));
    auto n = la::crypto::base64url_decode(s, out);
    if (!n) die("bad base64url in a minted token");
    out.resize(*n);
    return out;
}

// Keys and tokens shared by every benchmark; the temp directory goes away at exit.
struct environment {
    fs::path dir;
    std::string signed_token, sealed_token;
    la::io::system_clock clock;

    environment() {
        std::string tmpl = (fs::temp_directory_path() / "la-micro-bench.XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp failed");
        dir = tmpl;
        const std::string mint = "/usr/bin/python3 '" LA_SOURCE_DIR "/tests/support/mint.py'";
        const std::string keys = "'" + (dir / "keys").string() + "'";
        capture(mint + " keys --out " + keys + " --signing-kids k1 --secret-versions 1");
        const std::string claims = "'" + realistic_claims() + "'";
        signed_token = capture(mint + " sign --keys " + keys + " --kid k1 --claims " + claims);
        sealed_token = capture(mint + " seal --keys " + keys + " --kid 1 --claims " + claims);
        std::fprintf(stderr, "micro_bench: signed token %zu chars, sealed token %zu chars\n",
                     signed_token.size(), sealed_token.size());
    }
    ~environment() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    la::core::signing_key_set signing() const {
        auto s = la::core::load_signing_keys(dir / "keys" / "signing-keys.json");
        if (!s) die(s.error());
        return std::move(*s);
    }
    la::core::secret_set secrets() const {
        la::core::file_secret_store store(dir / "keys" / "secrets.json");
        auto s = store.load();
        if (!s) die(s.error());
        return std::move(*s);
    }
    la::core::engine make_engine(std::size_t cache_entries) const {
        la::core::engine_options o;
        o.issuer = std::string(issuer);
        o.cache_entries = cache_entries;
        return la::core::engine(std::move(o), signing(), secrets(), clock);
    }
};

const environment& env() {
    static const environment e;
    return e;
}

void report_allocs(benchmark::State& state, const la::test::alloc_scope& scope) {
    state.counters["allocs/op"] =
        benchmark::Counter(static_cast<double>(scope.count()), benchmark::Counter::kAvgIterations);
}

void BM_Base64UrlDecode400(benchmark::State& state) {
    const std::string_view tok = env().signed_token;
    const auto d = dots_of(tok);
    const std::string_view payload = tok.substr(d[0] + 1, d[1] - d[0] - 1);
    if (payload.size() < 400) die("payload segment shorter than 400 characters");
    const std::string_view in = payload.substr(0, 400);
    std::array<std::byte, 300> out{};
    la::test::alloc_scope allocs;
    for (auto _ : state) {
        auto n = la::crypto::base64url_decode(in, out);
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
    }
    report_allocs(state, allocs);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 400));
}
BENCHMARK(BM_Base64UrlDecode400);

void BM_Ed25519VerifyBare(benchmark::State& state) {
    const std::string_view tok = env().signed_token;
    const auto d = dots_of(tok);
    const auto keys = env().signing();
    const la::crypto::ed25519_public_key* key = keys.find("k1");
    if (key == nullptr) die("no key k1");
    const auto sig = b64(tok.substr(d[1] + 1));
    const auto msg = std::as_bytes(std::span(tok.data(), d[1]));
    if (!key->verify(msg, sig)) die("minted signature does not verify");
    la::test::alloc_scope allocs;
    for (auto _ : state) {
        bool ok = key->verify(msg, sig);
        benchmark::DoNotOptimize(ok);
    }
    report_allocs(state, allocs);
    state.SetLabel("signing input " + std::to_string(msg.size()) + " B");
}
BENCHMARK(BM_Ed25519VerifyBare);

// One engine validation loop; `cache_entries` 0 makes every signed token a cold verify.
void run_validate(benchmark::State& state, std::string_view token, std::size_t cache_entries) {
    auto eng = env().make_engine(cache_entries);
    const la::core::validate_request req{token, product, feature, {}};
    const auto first = eng.validate(req);
    if (first.st != status::valid) die("token not valid: " + std::string(la::core::to_string(first.st)));
    la::test::alloc_scope allocs;
    for (auto _ : state) {
        auto v = eng.validate(req);
        benchmark::DoNotOptimize(v);
    }
    report_allocs(state, allocs);
    if (eng.stats().invalid != 0) state.SkipWithError("a validation failed");
    state.SetLabel("token " + std::to_string(token.size()) + " B");
}

void BM_JwsValidateCold(benchmark::State& state) { run_validate(state, env().signed_token, 0); }
BENCHMARK(BM_JwsValidateCold);

void BM_JwsValidateCached(benchmark::State& state) { run_validate(state, env().signed_token, 4096); }
BENCHMARK(BM_JwsValidateCached);

void BM_JweValidate(benchmark::State& state) { run_validate(state, env().sealed_token, 4096); }
BENCHMARK(BM_JweValidate);

void BM_AesGcmDecryptBare(benchmark::State& state) {
    const std::string_view tok = env().sealed_token;
    const auto d = dots_of(tok);
    if (d.size() != 4) die("sealed token is not a 5-part JWE");
    const auto secrets = env().secrets();
    const la::crypto::aes256_gcm_key* key = secrets.find(1);
    if (key == nullptr) die("no secret version 1");
    const auto iv = b64(tok.substr(d[1] + 1, d[2] - d[1] - 1));
    const auto ct = b64(tok.substr(d[2] + 1, d[3] - d[2] - 1));
    const auto tag = b64(tok.substr(d[3] + 1));
    const auto aad = std::as_bytes(std::span(tok.data(), d[0]));
    std::vector<std::byte> plain(ct.size());
    const std::span<const std::byte, 12> iv_s(iv.data(), 12);
    const std::span<const std::byte, 16> tag_s(tag.data(), 16);
    if (!key->decrypt(iv_s, aad, ct, tag_s, plain)) die("minted JWE does not decrypt");
    la::test::alloc_scope allocs;
    for (auto _ : state) {
        auto r = key->decrypt(iv_s, aad, ct, tag_s, plain);
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    report_allocs(state, allocs);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(ct.size()));
    state.SetLabel("ciphertext " + std::to_string(ct.size()) + " B, aad " +
                   std::to_string(aad.size()) + " B");
}
BENCHMARK(BM_AesGcmDecryptBare);

void BM_SipHashToken(benchmark::State& state) {
    const std::string_view tok = env().signed_token;
    const auto key = la::crypto::siphash_key::random();
    const auto data = std::as_bytes(std::span(tok.data(), tok.size()));
    la::test::alloc_scope allocs;
    for (auto _ : state) {
        auto h = la::crypto::siphash128(key, data);
        benchmark::DoNotOptimize(h);
    }
    report_allocs(state, allocs);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(tok.size()));
}
BENCHMARK(BM_SipHashToken);

// What the server does for one VALIDATE frame already in its buffer: frame, decode, validate,
// encode the RESULT into the output buffer. No syscalls.
void run_server_path(benchmark::State& state, std::string_view token, std::size_t cache_entries) {
    auto eng = env().make_engine(cache_entries);
    std::vector<std::byte> in(la::net::max_wire_frame);
    std::vector<std::byte> out(la::net::max_wire_frame);
    const std::array<std::byte, la::net::nonce_size> nonce{std::byte{1}, std::byte{2}};
    const std::size_t in_len = la::net::encode_validate(in, nonce, token, product, feature, {});
    if (in_len == 0) die("encode_validate failed");
    const std::span<const std::byte> frame_bytes(in.data(), in_len);
    la::test::alloc_scope allocs;
    std::uint64_t bad = 0;
    for (auto _ : state) {
        la::net::frame_view f{};
        if (la::net::peek_frame(frame_bytes, f) != la::net::frame_state::ready) ++bad;
        auto body = la::net::decode_validate(f.body);
        if (!body) {
            ++bad;
            continue;
        }
        const la::core::validation v =
            eng.validate({body->token, body->product, body->feature, body->instance});
        if (v.st != status::valid) ++bad;
        std::size_t n = la::net::encode_result(out, body->nonce, v);
        benchmark::DoNotOptimize(n);
        benchmark::ClobberMemory();
    }
    report_allocs(state, allocs);
    if (bad != 0) state.SkipWithError("a request was not answered valid");
    state.SetLabel("frame " + std::to_string(in_len) + " B");
}

void BM_ServerPathSignedCached(benchmark::State& state) {
    run_server_path(state, env().signed_token, 4096);
}
BENCHMARK(BM_ServerPathSignedCached);

void BM_ServerPathSignedCold(benchmark::State& state) {
    run_server_path(state, env().signed_token, 0);
}
BENCHMARK(BM_ServerPathSignedCold);

void BM_ServerPathSealed(benchmark::State& state) {
    run_server_path(state, env().sealed_token, 0);
}
BENCHMARK(BM_ServerPathSealed);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    (void)env();  // mint before the first timing
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
