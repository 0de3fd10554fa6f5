#include "io/ring.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace la::io {
namespace {
thread_local ring* current_ring = nullptr;
}

ring* ring::current() noexcept { return current_ring; }

core::result<std::unique_ptr<ring>> ring::create(options opts) {
    std::unique_ptr<ring> r(new ring());
    io_uring_params params{};
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (unsigned flags : attempts) {
        params = {};
        params.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        params.cq_entries = opts.sq_entries * opts.cq_multiplier;
        ret = io_uring_queue_init_params(opts.sq_entries, &r->uring_, &params);
        if (ret != -EINVAL) {
            r->setup_flags_ = flags;
            break;
        }
    }
    if (ret < 0) return core::fail_errno(-ret);
    r->uring_ok_ = true;
    r->cq_entries_ = params.cq_entries;
    r->ready_.reserve(1024);
    r->cancels_.reserve(64);
    r->running_.reserve(1024);
    // Blocking on purpose: io_uring polls it; a non-blocking fd would complete with -EAGAIN.
    r->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (r->wake_fd_ < 0) return core::fail_errno(errno);
    if (current_ring == nullptr) current_ring = r.get();
    return r;
}

ring::~ring() {
    if (current_ring == this) current_ring = nullptr;
    if (uring_ok_) io_uring_queue_exit(&uring_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ring::schedule(std::coroutine_handle<> h) { ready_.push_back(h); }

void ring::post(posted_item* item) noexcept {
    // The eventfd write stays under the lock: once the ring has drained this item it
    // may finish and be destroyed, so nothing of the ring may be touched after unlock.
    std::lock_guard lock(posted_mu_);
    item->next = posted_head_;
    posted_head_ = item;
    // One eventfd write per burst: the ring clears the flag before it drains.
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }
}

void ring::drain_posted() {
    wake_pending_.store(false, std::memory_order_release);
    posted_item* list;
    {
        std::lock_guard lock(posted_mu_);
        list = std::exchange(posted_head_, nullptr);
    }
    // The list is LIFO; reverse it so posts resume in order.
    posted_item* ordered = nullptr;
    while (list != nullptr) {
        posted_item* next = list->next;
        list->next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered != nullptr) {
        posted_item* next = ordered->next;  // the item dies once its handle resumes
        schedule(ordered->handle);
        ordered = next;
    }
}

// The eventfd read stays armed while the ring runs, so post() wakes a blocked loop.
void ring::arm_wakeup() {
    if (wake_armed_) return;
    wake_armed_ = true;
    wake_op_ = {};
    wake_op_.prepare = [](op_state* self, ring& r) {
        io_uring_sqe* s = r.sqe();
        io_uring_prep_read(s, r.wake_fd_, &r.wake_buf_, sizeof r.wake_buf_, 0);
        io_uring_sqe_set_data(s, self);
    };
    start(&wake_op_);
}

io_uring_sqe* ring::sqe() noexcept {
    io_uring_sqe* s = io_uring_get_sqe(&uring_);
    LA_CHECK(s != nullptr);  // start() made room before calling prepare
    return s;
}

bool ring::fault_hits(op_state* op) noexcept {
    if (op == &wake_op_) return false;  // the loop's own wake-up read is never a target
    if (fault_.nth == 0 || op->kind != static_cast<std::uint8_t>(fault_.kind)) return false;
    ++fault_.seen;
    if (fault_.seen == fault_.nth || (fault_.repeat && fault_.seen > fault_.nth)) return true;
    return false;
}

void ring::start(op_state* op) noexcept {
    op->submitted = false;
    op->completed = false;
    op->next_pending = nullptr;
    if (fault_hits(op)) {
        op->res = -fault_.error;
        op->completed = true;
        if (op->waiter) schedule(op->waiter);
        return;
    }
    if (pending_head_ == nullptr && in_flight_ < cq_entries_ &&
        io_uring_sq_space_left(&uring_) >= op->sqes_needed) {
        op->submitted = true;
        ++in_flight_;
        op->prepare(op, *this);
        return;
    }
    // No room now: park it; flush_pending() submits in FIFO order as CQEs free space.
    if (pending_tail_ != nullptr) pending_tail_->next_pending = op;
    else pending_head_ = op;
    pending_tail_ = op;
}

void ring::flush_pending() {
    // Deferred cancels first: they free room. One whose op already completed is dropped.
    while (!cancels_.empty()) {
        if (io_uring_sq_space_left(&uring_) < 1) {
            io_uring_submit(&uring_);
            if (io_uring_sq_space_left(&uring_) < 1) break;
        }
        op_state* op = cancels_.back();
        cancels_.pop_back();
        submit_cancel(op);  // still in flight: reap() removes completed ops from cancels_
    }
    while (pending_head_ != nullptr) {
        op_state* op = pending_head_;
        if (in_flight_ >= cq_entries_) return;
        if (io_uring_sq_space_left(&uring_) < op->sqes_needed) {
            io_uring_submit(&uring_);
            if (io_uring_sq_space_left(&uring_) < op->sqes_needed) return;
        }
        pending_head_ = op->next_pending;
        if (pending_head_ == nullptr) pending_tail_ = nullptr;
        op->next_pending = nullptr;
        op->submitted = true;
        ++in_flight_;
        op->prepare(op, *this);
    }
}

void ring::cancel(op_state* op) noexcept {
    if (op->completed) return;
    if (!op->submitted) {
        // Still parked: unlink it and complete it here.
        op_state** link = &pending_head_;
        op_state* prev = nullptr;
        while (*link != nullptr && *link != op) {
            prev = *link;
            link = &(*link)->next_pending;
        }
        if (*link == op) {
            *link = op->next_pending;
            if (pending_tail_ == op) pending_tail_ = prev;
            op->res = -ECANCELED;
            op->completed = true;
            if (op->waiter) schedule(op->waiter);
        }
        return;
    }
    // A cancel may exceed the CQ budget: it is what frees the budget when every slot is held by
    // a read that would never complete (IORING_FEAT_NODROP keeps an overflowing CQE). With no
    // SQ entry free it waits in cancels_ for flush_pending(): a cancel is never dropped.
    if (io_uring_sq_space_left(&uring_) < 1) io_uring_submit(&uring_);
    if (io_uring_sq_space_left(&uring_) < 1) {
        cancels_.push_back(op);
        return;
    }
    submit_cancel(op);
}

void ring::submit_cancel(op_state* op) noexcept {
    io_uring_sqe* s = io_uring_get_sqe(&uring_);
    LA_CHECK(s != nullptr);
    io_uring_prep_cancel64(s, reinterpret_cast<std::uint64_t>(op), 0);
    io_uring_sqe_set_data(s, nullptr);
    ++in_flight_;
}

void ring::reap() {
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&uring_, head, cqe) {
        ++seen;
        auto* op = static_cast<op_state*>(io_uring_cqe_get_data(cqe));
        if (op == nullptr) continue;  // linked timeouts and cancels: nothing waits on them
        if (op == &wake_op_) {
            wake_armed_ = false;
            continue;
        }
        op->res = cqe->res;
        op->cqe_flags = cqe->flags;
        op->completed = true;
        // Its frame may die once resumed: a deferred cancel must not outlive it.
        if (!cancels_.empty()) std::erase(cancels_, op);
        if (op->waiter) ready_.push_back(op->waiter);
    }
    io_uring_cq_advance(&uring_, seen);
    // Every CQE frees one slot of the in-flight budget. A linked timeout posts no CQE of its
    // own (IOSQE_CQE_SKIP_SUCCESS); should a kernel post one anyway, IORING_FEAT_NODROP keeps
    // it and the budget only errs low.
    LA_CHECK(in_flight_ >= seen);
    in_flight_ -= seen;
}

void ring::run_ready() {
    // Swap so tasks scheduled while running wait for the next turn: I/O is submitted in between.
    running_.swap(ready_);
    for (std::coroutine_handle<> h : running_) h.resume();
    running_.clear();
}

void ring::turn(const bool* done) {
    ring* previous = current_ring;
    current_ring = this;
    run_ready();
    if (done != nullptr && *done) {
        current_ring = previous;
        return;
    }
    if (wake_pending_.load(std::memory_order_acquire)) drain_posted();
    arm_wakeup();
    flush_pending();
    // run() may wait on the wake-up read alone (an offload in progress); run_until_empty() only
    // waits while it has its own work in flight.
    const bool own_work = in_flight_ > (wake_armed_ ? 1u : 0u) || pending_head_ != nullptr;
    const bool block = ready_.empty() && (done != nullptr || own_work);
    int ret = block ? io_uring_submit_and_wait(&uring_, 1) : io_uring_submit_and_get_events(&uring_);
    (void)ret;  // -EINTR and -EBUSY are fine: we reap what is there and come back
    reap();
    if (!wake_armed_) drain_posted();  // the read consumed the eventfd count
    current_ring = previous;
}

void ring::run_until_empty() {
    // The wake-up read is always in flight; it does not count as work.
    while (!ready_.empty() || pending_head_ != nullptr ||
           in_flight_ > (wake_armed_ ? 1u : 0u) || wake_pending_.load()) {
        turn(nullptr);
    }
}

}  // namespace la::io
