#include "crypto/ct.hpp"

namespace la::crypto {

bool ct_equal(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
    if (a.size() != b.size()) return false;
    unsigned acc = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        acc |= std::to_integer<unsigned>(a[i] ^ b[i]);
    }
    // The barrier stops the optimiser from proving acc's value early and adding an exit.
    __asm__ volatile("" : "+r"(acc));
    return acc == 0;
}

}  // namespace la::crypto
