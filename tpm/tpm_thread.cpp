#include "tpm/tpm_thread.hpp"

#include <algorithm>

namespace la::tpm {
namespace detail {

watchdog::watchdog() { thread_ = std::thread([this] { loop(); }); }

watchdog::~watchdog() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

void watchdog::watch(std::shared_ptr<call_base> call) {
    {
        std::lock_guard lock(mu_);
        calls_.push_back(std::move(call));
    }
    cv_.notify_one();
}

void watchdog::loop() {
    std::unique_lock lock(mu_);
    std::vector<std::shared_ptr<call_base>> due;
    while (!stopping_) {
        const auto now = std::chrono::steady_clock::now();
        auto next = std::chrono::steady_clock::time_point::max();
        // Settled calls leave; due ones are expired outside the lock (post takes the ring's lock).
        std::erase_if(calls_, [&](const std::shared_ptr<call_base>& c) {
            if (c->state.load(std::memory_order_acquire) != call_base::pending) return true;
            if (c->deadline <= now) {
                due.push_back(c);
                return true;
            }
            next = std::min(next, c->deadline);
            return false;
        });
        if (!due.empty()) {
            lock.unlock();
            for (auto& c : due) c->settle(call_base::expired);
            due.clear();
            lock.lock();
            continue;
        }
        if (next == std::chrono::steady_clock::time_point::max()) cv_.wait(lock);
        else cv_.wait_until(lock, next);
    }
}

}  // namespace detail

tpm_thread::tpm_thread(tpm_options opts)
    : opts_(std::move(opts)), session_(opts_.tcti), worker_("la-tpm") {}

}  // namespace la::tpm
