// tpm_thread: the one thread that talks to the TPM. Coroutines submit jobs with call(); each
// job has a deadline, so a hung TPM resumes the caller with timed_out instead of hanging it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "crypto/secure_buffer.hpp"
#include "io/offload.hpp"
#include "io/ring.hpp"
#include "io/task.hpp"
#include "tpm/esys.hpp"

namespace la::tpm {

/// How to reach the TPM and how long one call may take.
struct tpm_options {
    std::string tcti;                                   ///< e.g. "swtpm:path=/run/swtpm/swtpm.sock"
    std::chrono::milliseconds timeout{5000};            ///< per call, including a reconnect
    /// Per call that generates a key (call_keygen): real TPMs take seconds, some tens of
    /// seconds, to find RSA-2048 primes, so `timeout` would fail provisioning on them.
    std::chrono::milliseconds keygen_timeout{120000};
};

namespace detail {

// The state of one call, shared by the awaiting coroutine, the TPM thread and the watchdog:
// whichever of "done" and "expired" wins the CAS posts the resume; the loser touches nothing
// but this heap object, so an abandoned job never writes into a dead coroutine frame.
struct call_base : io::worker_thread::job {
    enum : int { pending = 0, done = 1, expired = 2 };

    virtual ~call_base() = default;
    /// Moves pending -> to and, when that wins, resumes the waiter on its ring.
    bool settle(int to) noexcept {
        int expected = pending;
        if (!state.compare_exchange_strong(expected, to, std::memory_order_acq_rel)) return false;
        if (to == expired) session->mark_broken();  // the TPM thread may be stuck mid-command
        ring->post(&item);
        return true;
    }

    std::atomic<int> state{pending};
    esys_session* session = nullptr;
    io::ring* ring = nullptr;
    io::posted_item item{};
    std::chrono::steady_clock::time_point deadline{};
    std::shared_ptr<call_base> keep_alive;  // held while the job is queued or running
};

template <class Fn>
struct call_state final : call_base {
    using result_type = std::invoke_result_t<Fn&, esys_session&>;

    explicit call_state(Fn f) : fn(f) { this->run = &execute; }
    ~call_state() override { crypto::secure_zero(&fn, sizeof fn); }  // captures may hold secrets

    static void execute(io::worker_thread::job* j) {
        auto* self = static_cast<call_state*>(j);
        std::shared_ptr<call_base> keep = std::move(self->keep_alive);
        if (self->state.load(std::memory_order_acquire) != pending) return;  // abandoned while queued
        self->value.emplace(self->invoke());
        self->session->end_job();
        self->settle(done);
    }

    // Runs fn on an open context; one retry on a fresh context when a reused one turns out dead
    // (swtpm restarted, resource manager restarted).
    result_type invoke() {
        for (int attempt = 0;; ++attempt) {
            session->begin_job();
            auto ctx = session->context();
            if (!ctx) return core::fail(ctx.error());
            result_type r = fn(*session);
            if (r || r.error().category() != tss2_category()) return r;
            const auto rc = static_cast<std::uint32_t>(r.error().value());
            if (!is_connection_failure(rc)) return r;
            session->mark_broken();
            if (session->fresh() || attempt > 0 || std::chrono::steady_clock::now() >= deadline)
                return r;
        }
    }

    Fn fn;
    std::optional<result_type> value;
};

// Expires calls whose deadline passed. Its own thread, so neither a ring nor the TPM thread
// has to keep time.
class watchdog {
public:
    watchdog();
    ~watchdog();
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    void watch(std::shared_ptr<call_base> call);

private:
    void loop();
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::shared_ptr<call_base>> calls_;
    bool stopping_ = false;
    std::thread thread_;
};

struct call_awaiter {
    call_base* call;
    watchdog* dog;
    io::worker_thread* worker;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
        // Everything settle() reads is written before the call is published to the watchdog
        // and the TPM thread (their queues' mutexes order it).
        call->ring = io::ring::current();
        LA_CHECK(call->ring != nullptr);
        call->item.handle = h;
        dog->watch(call->keep_alive);
        worker->submit(call);
    }
    void await_resume() const noexcept {}
};
static_assert(std::is_trivially_destructible_v<call_awaiter>);

}  // namespace detail

/// Owns the ESYS context and the thread that uses it. Thread: call() from any ring thread; the
/// TPM is only ever touched on thread_id(). Lifetime: destroy after every call has resumed; a
/// call stuck in a hung TPM delays the destructor until the TPM answers or the socket drops
/// (check wait_idle() first: a process may rather exit without waiting).
class tpm_thread {
public:
    explicit tpm_thread(tpm_options opts);
    ~tpm_thread() = default;
    tpm_thread(const tpm_thread&) = delete;
    tpm_thread& operator=(const tpm_thread&) = delete;

    /// Runs `fn(esys_session&)` (returning core::result<T>) on the TPM thread and resumes the
    /// caller on its ring. `fn` is copied into a heap job that may outlive the caller, so it
    /// must capture by value only trivially copyable data (TPM2B structs, handles) - never
    /// references into the caller's frame. Errors: fn's, the context's open error, or
    /// std::errc::timed_out after options().timeout (the late result is discarded and the
    /// context is reopened on the next call).
    template <class Fn>
    io::task<std::invoke_result_t<Fn&, esys_session&>> call(Fn fn) {
        return call_within(fn, opts_.timeout);
    }
    /// As call(), for commands that generate a key: the deadline is options().keygen_timeout
    /// (never shorter than options().timeout).
    template <class Fn>
    io::task<std::invoke_result_t<Fn&, esys_session&>> call_keygen(Fn fn) {
        return call_within(fn, std::max(opts_.keygen_timeout, opts_.timeout));
    }

    /// The TPM thread's id (tests check that no TPM call ran elsewhere).
    std::thread::id thread_id() const noexcept { return worker_.id(); }
    /// Blocks until the call running on the TPM (if any) ends, or it outlives the timeout: then
    /// false, the TPM hangs and destroying this object would wait for it (see daemon shutdown).
    /// For a stopping process only; never on a running ring.
    bool wait_idle() const noexcept {
        for (;;) {
            const auto busy = session_.busy_for();
            if (busy == std::chrono::steady_clock::duration::zero()) return true;
            if (busy > opts_.timeout) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    /// Contexts opened so far (1 after the first call; more after reconnects).
    std::uint64_t opens() const noexcept { return session_.opens(); }
    const tpm_options& options() const noexcept { return opts_; }

private:
    template <class Fn>
    io::task<std::invoke_result_t<Fn&, esys_session&>> call_within(Fn fn, std::chrono::milliseconds timeout) {
        static_assert(std::is_trivially_copyable_v<Fn> && std::is_trivially_destructible_v<Fn>,
                      "capture trivially copyable values only: the job may outlive the caller");
        auto st = std::make_shared<detail::call_state<Fn>>(fn);
        crypto::secure_zero(&fn, sizeof fn);
        st->session = &session_;
        st->deadline = std::chrono::steady_clock::now() + timeout;
        st->keep_alive = st;
        detail::call_awaiter aw{st.get(), &watchdog_, &worker_};
        co_await aw;
        if (st->state.load(std::memory_order_acquire) != detail::call_base::done)
            co_return core::fail(std::errc::timed_out);
        co_return std::move(*st->value);
    }

    tpm_options opts_;
    esys_session session_;          // used only on worker_; outlives it
    detail::watchdog watchdog_;
    io::worker_thread worker_;      // last: joined first, before the session closes
};

}  // namespace la::tpm
