#include "core/state_file.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "crypto/sha256.hpp"
#include "io/crash_point.hpp"
#include "io/ring.hpp"
#include "tests/unit/core/core_test_util.hpp"

namespace la::core {
namespace {

using test::temp_dir;

constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

// A document of generation `gen`: secret 2 in GRACE with every date set, secret 3 ACTIVE forever.
state_document sample(std::uint64_t gen) {
    state_document d;
    d.backend = "tpm";
    d.vault.generation = gen;
    d.vault.highest_version = 3;
    d.updated_at = 1764000000 + static_cast<std::int64_t>(gen);
    secret_meta grace;
    grace.valid_from = 1700000000;
    grace.valid_until = 1760000000;
    grace.grace_until = 1761000000;
    grace.state = secret_state::grace;
    d.vault.secrets.push_back({2, grace});
    d.vault.secrets.push_back({3, secret_meta{}});
    return d;
}

std::string hex_sha256(std::string_view text) {
    const auto digest = crypto::sha256(std::as_bytes(std::span(text)));
    std::string out;
    for (const std::byte b : digest) {
        static constexpr char digits[] = "0123456789abcdef";
        out += digits[std::to_integer<unsigned>(b) >> 4];
        out += digits[std::to_integer<unsigned>(b) & 0xF];
    }
    return out;
}

// Completes an unterminated object `{...` with a correct checksum, as a writer would.
std::string sealed(const std::string& open_body) {
    return open_body + ",\"checksum\":\"" + hex_sha256(open_body + "}") + "\"}\n";
}

// The encoded text with its checksum member (and the closing brace) removed.
std::string unsealed(const std::string& text) { return text.substr(0, text.rfind(",\"checksum\":")); }

std::string read_all(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

io::task<expected<void, std::string>> save_task(state_store* store, const state_document* doc) {
    co_return co_await store->save(*doc);
}

io::task<state_load> load_task(state_store* store) { co_return co_await store->load(); }

// Each call runs on a fresh real ring (so a forked child never shares its parent's ring).
expected<void, std::string> save_now(const temp_dir& dir, const state_document& doc,
                                     io::fault_plan plan = {}, std::size_t copies = 5) {
    auto r = io::ring::create();
    if (!r) return unexpected<std::string>("no ring: " + r.error().message());
    (*r)->set_fault_plan(plan);
    state_store store(dir.path().string(), copies);
    return (*r)->run(save_task(&store, &doc));
}

state_load load_now(const temp_dir& dir, io::fault_plan plan = {}, std::size_t copies = 5) {
    auto r = io::ring::create();
    EXPECT_TRUE(r.has_value());
    if (!r) return {};
    (*r)->set_fault_plan(plan);
    state_store store(dir.path().string(), copies);
    return (*r)->run(load_task(&store));
}

std::string describe(const state_load& l) {
    std::string s = "from=" + std::to_string(static_cast<int>(l.from)) + " copy=" + l.copy_name;
    for (const auto& p : l.problems) s += "\n  problem: " + p;
    return s;
}

// --- encode / decode ------------------------------------------------------------------------

TEST(StateFileTest, EncodeDecodeRoundTrips) {
    state_document d = sample(7);
    secret_meta odd;
    odd.valid_from = -5;
    odd.valid_until = int64_min + 1;
    odd.grace_until = int64_min + 1;
    odd.state = secret_state::invalidated;
    d.vault.secrets.insert(d.vault.secrets.begin(), secret_entry{1, odd});
    secret_meta gone;
    gone.valid_until = 10;
    gone.grace_until = 20;
    gone.state = secret_state::expired;
    d.vault.secrets.push_back({std::numeric_limits<std::uint64_t>::max(), gone});
    d.vault.highest_version = std::numeric_limits<std::uint64_t>::max();
    d.vault.generation = std::numeric_limits<std::uint64_t>::max();
    d.updated_at = int64_min;
    d.backend = "enc\"rypted\\file\x01";

    const std::string text = encode_state(d);
    const auto back = decode_state(text);
    ASSERT_TRUE(back.has_value()) << back.error() << "\n" << text;
    EXPECT_EQ(*back, d);
    EXPECT_EQ(encode_state(*back), text);
}

TEST(StateFileTest, EncodedDocumentHasTheDocumentedShape) {
    const std::string text = encode_state(sample(7));
    EXPECT_EQ(text.rfind("{\"format\":1,\"backend\":\"tpm\",\"generation\":7,\"highest_version\":3,"
                         "\"updated_at\":1764000007,\"secrets\":[",
                         0),
              0u)
        << text;
    EXPECT_NE(text.find("{\"version\":2,\"state\":\"grace\",\"valid_from\":1700000000,"
                        "\"valid_until\":1760000000,\"grace_until\":1761000000}"),
              std::string::npos)
        << text;
    // Dates at their "forever" defaults are null.
    EXPECT_NE(text.find("{\"version\":3,\"state\":\"active\",\"valid_from\":null,"
                        "\"valid_until\":null,\"grace_until\":null}"),
              std::string::npos)
        << text;
    EXPECT_TRUE(text.ends_with("\"}\n"));
    EXPECT_EQ(text.find('\n'), text.size() - 1);

    // The checksum is SHA-256 of the document without it, as openssl computes it, and a
    // standard JSON parser reads the file.
    temp_dir dir;
    const std::string body = unsealed(text) + "}";
    test::write_file(dir / "body", body);
    test::write_file(dir / "doc", text);
    const std::string openssl = test::run_capture("openssl dgst -sha256 -r '" + (dir / "body").string() + "'");
    const std::string expected_sum = openssl.substr(0, 64);
    EXPECT_NE(text.find(",\"checksum\":\"" + expected_sum + "\"}"), std::string::npos) << text;
    const std::string py = test::run_capture(
        "/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
        "print(d[\"generation\"], d[\"secrets\"][1][\"valid_until\"], d[\"checksum\"])' '" +
        (dir / "doc").string() + "'");
    EXPECT_EQ(py, "7 None " + expected_sum + "\n");
}

// A newer writer may add members anywhere (keeping the checksum last): they are ignored.
TEST(StateFileTest, UnknownMembersAreIgnored) {
    const state_document d = sample(9);
    std::string body = unsealed(encode_state(d));
    body.insert(1, "\"rotation\":{\"next_version\":4,\"at\":[1,2,{\"x\":null}]},\"degraded\":true,");
    const auto pos = body.find("\"state\":\"active\"");
    ASSERT_NE(pos, std::string::npos);
    body.insert(pos, "\"note\":\"sealed by tpm 2\",\"attempts\":3,");
    body += ",\"future\":\"member\"";
    const auto back = decode_state(sealed(body));
    ASSERT_TRUE(back.has_value()) << back.error();
    EXPECT_EQ(*back, d);
}

TEST(StateFileTest, AbsentOrNullDatesMeanForever) {
    const auto back = decode_state(sealed(
        "{\"format\":1,\"backend\":\"file\",\"generation\":1,\"highest_version\":5,\"updated_at\":0,"
        "\"secrets\":[{\"version\":5,\"state\":\"active\",\"valid_until\":null}]"));
    ASSERT_TRUE(back.has_value()) << back.error();
    ASSERT_EQ(back->vault.secrets.size(), 1u);
    EXPECT_EQ(back->vault.secrets[0].meta.valid_from, int64_min);
    EXPECT_EQ(back->vault.secrets[0].meta.valid_until, int64_max);
    EXPECT_EQ(back->vault.secrets[0].meta.grace_until, int64_max);
    EXPECT_EQ(back->backend, "file");
}

struct bad_doc {
    const char* what;
    std::string text;
    std::string error;  ///< exact, or a prefix when it ends with "..."
};

// Builds `{"format":1,...,"secrets":[<secrets>]` with one member swapped for `member`.
std::string body_with(std::string_view member_name, std::string_view member_value,
                      std::string_view secrets = "{\"version\":3,\"state\":\"active\"}") {
    std::vector<std::pair<std::string, std::string>> m = {
        {"format", "1"},      {"backend", "\"tpm\""},   {"generation", "7"},
        {"highest_version", "3"}, {"updated_at", "100"}, {"secrets", "[" + std::string(secrets) + "]"}};
    std::string s = "{";
    for (auto& [k, v] : m) {
        if (k == member_name && member_value.empty()) continue;  // removed
        if (s.size() > 1) s += ",";
        s += "\"" + k + "\":" + (k == member_name ? std::string(member_value) : v);
    }
    return s;
}

TEST(StateFileTest, DecodeRefusesBadDocumentsWithClearErrors) {
    const std::string good = encode_state(sample(7));
    std::string flipped = good;
    flipped[flipped.find("\"generation\":7") + 13] ^= 0x01;  // 7 -> 6: still valid JSON
    std::string checksum_first = unsealed(good);
    const std::string sum = good.substr(good.rfind(":\"") + 2, 64);
    checksum_first.insert(1, "\"checksum\":\"" + sum + "\",");
    checksum_first += "}";

    const std::vector<bad_doc> cases = {
        {"empty", "", "empty"},
        {"truncated", good.substr(0, good.size() / 2), "not JSON (..."},
        {"garbage", "\x7f" "ELF\x02\x01", "not JSON (..."},
        {"array", "[1,2]", "not a JSON object"},
        {"too big", good + std::string(300 * 1024, ' '), "larger than 262144 bytes"},
        {"bit flip", flipped, "checksum mismatch"},
        {"no checksum", unsealed(good) + "}", "missing checksum"},
        {"short checksum", unsealed(good) + ",\"checksum\":\"abc\"}", "malformed checksum"},
        {"upper-case checksum", unsealed(good) + ",\"checksum\":\"" + std::string(64, 'A') + "\"}",
         "malformed checksum"},
        {"checksum first", checksum_first, "checksum is not the last member"},
        {"space before the end", unsealed(good) + ",\"checksum\":\"" + sum + "\" }",
         "checksum is not the last member"},
        {"no format", sealed(body_with("format", "")), "missing \"format\""},
        {"format string", sealed(body_with("format", "\"1\"")), "\"format\" must be an integer"},
        {"format 2", sealed(body_with("format", "2")), "unsupported format 2"},
        {"format 2 unsealed", body_with("format", "2") + "}", "unsupported format 2"},
        {"backend number", sealed(body_with("backend", "5")), "\"backend\" must be a string"},
        {"backend empty", sealed(body_with("backend", "\"\"")), "\"backend\" is empty"},
        {"no backend", sealed(body_with("backend", "")), "missing \"backend\""},
        {"no generation", sealed(body_with("generation", "")), "missing \"generation\""},
        {"negative generation", sealed(body_with("generation", "-1")),
         "\"generation\" must be an unsigned integer"},
        {"fractional generation", sealed(body_with("generation", "1.5")),
         "\"generation\" must be an unsigned integer"},
        {"huge generation", sealed(body_with("generation", "18446744073709551616")),
         "\"generation\" must be an unsigned integer"},
        {"string highest_version", sealed(body_with("highest_version", "\"3\"")),
         "\"highest_version\" must be an unsigned integer"},
        {"null updated_at", sealed(body_with("updated_at", "null")), "\"updated_at\" must be an integer"},
        {"secrets object", sealed(body_with("secrets", "{}")), "\"secrets\" must be an array"},
        {"no secrets", sealed(body_with("secrets", "")), "missing \"secrets\""},
        {"secret not object", sealed(body_with("", "", "3")), "secrets[0]: expected an object"},
        {"secret without version", sealed(body_with("", "", "{\"state\":\"active\"}")),
         "secrets[0]: missing \"version\""},
        {"unknown state", sealed(body_with("", "", "{\"version\":3,\"state\":\"gone\"}")),
         "secrets[0]: unknown state \"gone\""},
        {"state number", sealed(body_with("", "", "{\"version\":3,\"state\":1}")),
         "secrets[0]: \"state\" must be a string"},
        {"date string", sealed(body_with("", "", "{\"version\":3,\"state\":\"active\",\"valid_until\":\"x\"}")),
         "secrets[0]: \"valid_until\" must be an integer or null"},
        {"grace before end",
         sealed(body_with("", "", "{\"version\":3,\"state\":\"grace\",\"valid_until\":10,\"grace_until\":9}")),
         "secrets[0]: \"grace_until\" before \"valid_until\""},
        {"versions out of order",
         sealed(body_with("", "", "{\"version\":3,\"state\":\"active\"},{\"version\":2,\"state\":\"active\"}")),
         "secrets[1]: version 2 out of order or repeated"},
        {"version repeated",
         sealed(body_with("", "", "{\"version\":2,\"state\":\"active\"},{\"version\":2,\"state\":\"grace\"}")),
         "secrets[1]: version 2 out of order or repeated"},
        {"version above highest", sealed(body_with("", "", "{\"version\":4,\"state\":\"active\"}")),
         "secrets[0]: version 4 above \"highest_version\" 3"},
        {"duplicate member", sealed(body_with("generation", "7,\"generation\":8")), "not JSON (..."},
    };
    for (const auto& c : cases) {
        const auto r = decode_state(c.text);
        ASSERT_FALSE(r.has_value()) << c.what;
        if (c.error.ends_with("...")) {
            EXPECT_TRUE(r.error().starts_with(c.error.substr(0, c.error.size() - 3)))
                << c.what << ": " << r.error();
        } else {
            EXPECT_EQ(r.error(), c.error) << c.what;
        }
    }
}

TEST(StateFileTest, MoreSecretsThanASetHoldsAreRefused) {
    std::string secrets;
    for (std::uint64_t v = 1; v <= secret_set::capacity + 1; ++v) {
        if (!secrets.empty()) secrets += ",";
        secrets += "{\"version\":" + std::to_string(v) + ",\"state\":\"active\"}";
    }
    const auto r = decode_state(sealed(body_with("highest_version", "100", secrets)));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), "more than 16 secrets");
}

// --- state_store ----------------------------------------------------------------------------

TEST(StateStoreTest, FirstStartLoadsNothingAndReportsNothing) {
    temp_dir dir;
    const state_load l = load_now(dir);
    EXPECT_FALSE(l.doc.has_value());
    EXPECT_EQ(l.from, state_load::origin::none);
    EXPECT_TRUE(l.problems.empty()) << describe(l);
}

TEST(StateStoreTest, SavedDocumentLoadsFromTheMainFile) {
    temp_dir dir;
    const state_document d = sample(7);
    const auto saved = save_now(dir, d);
    ASSERT_TRUE(saved.has_value()) << saved.error();
    const state_load l = load_now(dir);
    ASSERT_TRUE(l.doc.has_value()) << describe(l);
    EXPECT_EQ(l.from, state_load::origin::main);
    EXPECT_EQ(*l.doc, d);
    EXPECT_TRUE(l.problems.empty()) << describe(l);

    // 7 % 5 = 2: the copy holds the same bytes; both owner-only; no temp file left.
    EXPECT_EQ(read_all(dir / "state.json"), encode_state(d));
    EXPECT_EQ(read_all(dir / "state.json.2"), encode_state(d));
    for (const char* name : {"state.json", "state.json.2"}) {
        struct stat st{};
        ASSERT_EQ(::stat((dir / name).c_str(), &st), 0) << name;
        EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
    }
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        (void)e;
        ++files;
    }
    EXPECT_EQ(files, 2);
}

struct corruption {
    const char* what;
    std::string content;
    std::string problem;  ///< exact, or a prefix when it ends with "..."
};

std::vector<corruption> corruptions_of(const std::string& good) {
    std::string flipped = good;
    flipped[flipped.find("\"updated_at\":") + 14] ^= 0x04;  // a digit of updated_at: still JSON
    return {
        {"truncated", good.substr(0, good.size() - 20), "not JSON (..."},
        {"bit flip", flipped, "checksum mismatch"},
        {"garbage", std::string("\0\x13\x88garbage\xff", 11), "not JSON (..."},
        {"empty", "", "empty"},
        {"too big", good + std::string(max_state_bytes, ' '), "larger than 262144 bytes"},
    };
}

void expect_problem(const std::string& got, const std::string& file, const std::string& want) {
    if (want.ends_with("...")) {
        EXPECT_TRUE(got.starts_with(file + ": " + want.substr(0, want.size() - 3))) << got;
    } else {
        EXPECT_EQ(got, file + ": " + want);
    }
}

TEST(StateStoreTest, CorruptMainIsRecoveredFromTheNewestGoodCopy) {
    for (const auto& c : corruptions_of(encode_state(sample(3)))) {
        temp_dir dir;
        for (std::uint64_t gen = 1; gen <= 3; ++gen) ASSERT_TRUE(save_now(dir, sample(gen)).has_value());
        test::write_file(dir / "state.json", c.content);
        const state_load l = load_now(dir);
        ASSERT_TRUE(l.doc.has_value()) << c.what << ": " << describe(l);
        EXPECT_EQ(l.from, state_load::origin::copy) << c.what;
        EXPECT_EQ(l.copy_name, "state.json.3") << c.what;
        EXPECT_EQ(*l.doc, sample(3)) << c.what;
        ASSERT_EQ(l.problems.size(), 1u) << c.what << ": " << describe(l);
        expect_problem(l.problems[0], "state.json", c.problem);
    }
}

TEST(StateStoreTest, ACorruptNewestCopyFallsBackToTheNextGeneration) {
    temp_dir dir;
    for (std::uint64_t gen = 1; gen <= 3; ++gen) ASSERT_TRUE(save_now(dir, sample(gen)).has_value());
    test::write_file(dir / "state.json", "{}");
    std::string copy = read_all(dir / "state.json.3");
    copy[copy.size() / 2] = static_cast<char>(copy[copy.size() / 2] ^ 0x20);
    test::write_file(dir / "state.json.3", copy);
    const state_load l = load_now(dir);
    ASSERT_TRUE(l.doc.has_value()) << describe(l);
    EXPECT_EQ(l.from, state_load::origin::copy);
    EXPECT_EQ(l.copy_name, "state.json.2");
    EXPECT_EQ(*l.doc, sample(2));
    ASSERT_EQ(l.problems.size(), 2u) << describe(l);
    EXPECT_EQ(l.problems[0], "state.json: missing \"format\"");
    EXPECT_TRUE(l.problems[1].starts_with("state.json.3: ")) << l.problems[1];
}

TEST(StateStoreTest, MissingMainIsReportedWhenACopyIsUsed) {
    temp_dir dir;
    ASSERT_TRUE(save_now(dir, sample(4)).has_value());
    std::filesystem::remove(dir / "state.json");
    const state_load l = load_now(dir);
    ASSERT_TRUE(l.doc.has_value()) << describe(l);
    EXPECT_EQ(l.from, state_load::origin::copy);
    EXPECT_EQ(l.copy_name, "state.json.4");
    EXPECT_EQ(*l.doc, sample(4));
    EXPECT_EQ(l.problems, std::vector<std::string>{"state.json: missing"});
}

TEST(StateStoreTest, AllFilesCorruptLoadsNothingAndListsEveryProblem) {
    temp_dir dir;
    for (std::uint64_t gen = 1; gen <= 2; ++gen) ASSERT_TRUE(save_now(dir, sample(gen)).has_value());
    test::write_file(dir / "state.json", "");
    test::write_file(dir / "state.json.1", "not json");
    std::string two = read_all(dir / "state.json.2");
    two[two.find("\"generation\":2") + 13] = '3';
    test::write_file(dir / "state.json.2", two);
    const state_load l = load_now(dir);
    EXPECT_FALSE(l.doc.has_value());
    EXPECT_EQ(l.from, state_load::origin::none);
    ASSERT_EQ(l.problems.size(), 3u) << describe(l);
    EXPECT_EQ(l.problems[0], "state.json: empty");
    EXPECT_TRUE(l.problems[1].starts_with("state.json.1: not JSON")) << l.problems[1];
    EXPECT_EQ(l.problems[2], "state.json.2: checksum mismatch");

    // Only copies, all corrupt: the missing main is reported too.
    std::filesystem::remove(dir / "state.json");
    const state_load l2 = load_now(dir);
    EXPECT_FALSE(l2.doc.has_value());
    ASSERT_EQ(l2.problems.size(), 3u) << describe(l2);
    EXPECT_EQ(l2.problems[0], "state.json: missing");
}

TEST(StateStoreTest, AnUnreadableMainFallsBackToACopy) {
    temp_dir dir;
    ASSERT_TRUE(save_now(dir, sample(1)).has_value());
    // The first read of the load is state.json's: EIO from the ring.
    const state_load l = load_now(dir, io::fault_plan{io::op_kind::read, 1, EIO});
    ASSERT_TRUE(l.doc.has_value()) << describe(l);
    EXPECT_EQ(l.from, state_load::origin::copy);
    EXPECT_EQ(l.copy_name, "state.json.1");
    EXPECT_EQ(l.problems, std::vector<std::string>{"state.json: unreadable: Input/output error"});
}

TEST(StateStoreTest, SaveKeepsTheLastNGenerations) {
    temp_dir dir;
    constexpr std::size_t copies = 5;
    for (std::uint64_t gen = 1; gen <= copies + 2; ++gen)
        ASSERT_TRUE(save_now(dir, sample(gen), {}, copies).has_value()) << gen;
    // Generations 1 and 2 were overwritten by 6 and 7; 3..7 remain.
    const std::uint64_t expected_gen[copies] = {5, 6, 7, 3, 4};
    for (std::size_t k = 0; k < copies; ++k) {
        const auto d = decode_state(read_all(dir / ("state.json." + std::to_string(k))));
        ASSERT_TRUE(d.has_value()) << k << ": " << d.error();
        EXPECT_EQ(*d, sample(expected_gen[k])) << k;
    }
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        (void)e;
        ++files;
    }
    EXPECT_EQ(files, static_cast<int>(copies) + 1);
    const state_load l = load_now(dir, {}, copies);
    ASSERT_TRUE(l.doc.has_value());
    EXPECT_EQ(*l.doc, sample(7));
}

// Every io_uring op of a save, failed in turn: the save reports it and state.json still loads,
// holding the previous document unless the failure came after its rename.
TEST(StateStoreTest, AFailingSaveStepLeavesALoadableState) {
    struct step {
        io::op_kind kind;
        std::uint64_t nth;
        const char* file;    ///< the file being written when the op fails
        bool main_replaced;  ///< state.json already renamed into place then
    };
    // One write per file (small documents): main = openat 1, write 1, fsync 1, close 1,
    // rename 1, then the directory's openat 2, fsync 2, close 2; the copy likewise with 3 and 4.
    const char* main = "state.json";
    const char* copy = "state.json.0";  // generation 5 % 5
    const step steps[] = {
        {io::op_kind::openat, 1, main, false}, {io::op_kind::write, 1, main, false},
        {io::op_kind::fsync, 1, main, false},  {io::op_kind::close, 1, main, false},
        {io::op_kind::rename, 1, main, false}, {io::op_kind::openat, 2, main, true},
        {io::op_kind::fsync, 2, main, true},   {io::op_kind::close, 2, main, true},
        {io::op_kind::openat, 3, copy, true},  {io::op_kind::write, 2, copy, true},
        {io::op_kind::fsync, 3, copy, true},   {io::op_kind::close, 3, copy, true},
        {io::op_kind::rename, 2, copy, true},  {io::op_kind::openat, 4, copy, true},
        {io::op_kind::fsync, 4, copy, true},   {io::op_kind::close, 4, copy, true},
    };
    const state_document old_doc = sample(4);
    const state_document new_doc = sample(5);
    for (const int error : {EIO, ENOSPC}) {
        for (const step& s : steps) {
            const std::string what = "op " + std::to_string(static_cast<int>(s.kind)) + " #" +
                                     std::to_string(s.nth) + " errno " + std::to_string(error);
            temp_dir dir;
            ASSERT_TRUE(save_now(dir, old_doc).has_value());
            const auto r = save_now(dir, new_doc, io::fault_plan{s.kind, s.nth, error});
            ASSERT_FALSE(r.has_value()) << what;
            const std::string file = s.file;
            const std::string message = std::error_code(error, std::generic_category()).message();
            EXPECT_EQ(r.error(), "cannot write " + file + ": " + message) << what;

            const state_load l = load_now(dir);
            ASSERT_TRUE(l.doc.has_value()) << what << ": " << describe(l);
            EXPECT_EQ(l.from, state_load::origin::main) << what;
            EXPECT_EQ(*l.doc, s.main_replaced ? new_doc : old_doc) << what;
            EXPECT_TRUE(l.problems.empty()) << what << ": " << describe(l);
            // The old generation's copy is untouched either way.
            EXPECT_EQ(read_all(dir / "state.json.4"), encode_state(old_doc)) << what;

            // Nothing is wedged: the next save goes through.
            ASSERT_TRUE(save_now(dir, new_doc).has_value()) << what;
            EXPECT_EQ(read_all(dir / "state.json"), encode_state(new_doc)) << what;
            EXPECT_EQ(read_all(dir / "state.json.0"), encode_state(new_doc)) << what;
        }
    }
}

// kill -9 inside either atomic write: state.json holds the old or the new document, whole.
TEST(StateStoreTest, CrashDuringSaveLeavesTheOldOrTheNewDocument) {
    struct point {
        const char* spec;
        bool new_main;  ///< state.json holds the new document after the crash
        bool new_copy;  ///< state.json.0 holds it
    };
    const point points[] = {
        {"atomic.opened:1", false, false},   {"atomic.written:1", false, false},
        {"atomic.synced:1", false, false},   {"atomic.renamed:1", true, false},
        {"atomic.dir_synced:1", true, false}, {"atomic.opened:2", true, false},
        {"atomic.written:2", true, false},   {"atomic.synced:2", true, false},
        {"atomic.renamed:2", true, true},    {"atomic.dir_synced:2", true, true},
    };
    const state_document old_doc = sample(4);
    const state_document new_doc = sample(5);
    for (const point& p : points) {
        temp_dir dir;
        ASSERT_TRUE(save_now(dir, old_doc).has_value());
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            io::arm_crash_point(p.spec);
            const auto r = save_now(dir, new_doc);
            ::_exit(r.has_value() ? 0 : 1);  // only reached if the crash point was missed
        }
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status)) << p.spec << " was never reached";
        EXPECT_EQ(WTERMSIG(status), SIGKILL) << p.spec;

        const state_load l = load_now(dir);
        ASSERT_TRUE(l.doc.has_value()) << p.spec << ": " << describe(l);
        EXPECT_EQ(l.from, state_load::origin::main) << p.spec;
        EXPECT_EQ(*l.doc, p.new_main ? new_doc : old_doc) << p.spec;
        EXPECT_TRUE(l.problems.empty()) << p.spec << ": " << describe(l);
        EXPECT_EQ(std::filesystem::exists(dir / "state.json.0"), p.new_copy) << p.spec;
        EXPECT_EQ(read_all(dir / "state.json.4"), encode_state(old_doc)) << p.spec;

        // The next save (after a restart) completes over any leftover temp file.
        ASSERT_TRUE(save_now(dir, new_doc).has_value()) << p.spec;
        const state_load after = load_now(dir);
        ASSERT_TRUE(after.doc.has_value()) << p.spec;
        EXPECT_EQ(*after.doc, new_doc) << p.spec;
    }
}

}  // namespace
}  // namespace la::core
