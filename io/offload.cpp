#include "io/offload.hpp"

#include <pthread.h>

namespace la::io {

worker_thread::worker_thread(std::string name) : name_(std::move(name)) {
    thread_ = std::thread([this] { loop(); });
}

worker_thread::~worker_thread() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

void worker_thread::submit(job* j) {
    {
        std::lock_guard lock(mu_);
        j->next = nullptr;
        if (tail_ != nullptr) tail_->next = j;
        else head_ = j;
        tail_ = j;
    }
    cv_.notify_one();
}

void worker_thread::loop() {
    ::pthread_setname_np(::pthread_self(), name_.substr(0, 15).c_str());
    for (;;) {
        job* j;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return head_ != nullptr || stopping_; });
            if (head_ == nullptr) return;
            j = head_;
            head_ = j->next;
            if (head_ == nullptr) tail_ = nullptr;
        }
        j->run(j);
    }
}

}  // namespace la::io
