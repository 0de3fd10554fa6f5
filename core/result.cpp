#include "core/result.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace la::core {
namespace {
class agent_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "license-agent"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::config_invalid: return "invalid configuration";
            case errc::file_too_open: return "file is readable by group or others";
            case errc::key_invalid: return "invalid key";
            case errc::protocol_error: return "protocol error";
            case errc::peer_closed: return "peer closed the connection";
            case errc::crypto_failure: return "cryptographic primitive failed";
            case errc::auth_failed: return "authentication failed";
        }
        return "unknown error";
    }
};
}  // namespace

const std::error_category& agent_category() noexcept {
    static const agent_category_impl instance;
    return instance;
}

void check_failed(const char* what, const char* file, int line) noexcept {
    std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", what, file, line);
    std::abort();
}
}  // namespace la::core
