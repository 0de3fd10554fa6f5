#include "core/plain_vault.hpp"

#include <fmt/format.h>

namespace la::core {
namespace {

constexpr std::string_view read_only =
    "the \"file\" backend is read-only (tests and demos): use backend \"tpm\" or \"encrypted-file\"";

}  // namespace

io::task<expected<secret_set, std::string>> plain_file_vault::load(const vault_metadata&) {
    const std::filesystem::path* file = &file_;
    auto set = co_await io::offload(*worker_, [file] { return file_secret_store(*file).load(); });
    health_.available = set.has_value();
    co_return set;
}

io::task<expected<vault_metadata, std::string>> plain_file_vault::read_metadata() {
    vault_metadata meta;
    auto set = co_await load(meta);
    if (!set) co_return unexpected<std::string>(std::move(set.error()));
    for (std::size_t i = 0; i < set->size(); ++i) {
        const std::uint64_t v = set->version(i);
        meta.secrets.push_back(secret_entry{v, *set->meta(v)});
        meta.highest_version = std::max(meta.highest_version, v);
    }
    std::sort(meta.secrets.begin(), meta.secrets.end(),
              [](const secret_entry& a, const secret_entry& b) { return a.version < b.version; });
    co_return meta;
}

io::task<expected<void, std::string>> plain_file_vault::stage(std::span<const new_secret>) {
    co_return unexpected<std::string>(std::string(read_only));
}

io::task<expected<void, std::string>> plain_file_vault::commit(const vault_metadata&,
                                                               std::span<const new_secret>) {
    co_return unexpected<std::string>(std::string(read_only));
}

}  // namespace la::core
