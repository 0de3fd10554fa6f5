// A real swtpm per test on a Unix socket in a private directory (never a TCP port).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace la::test {

// One swtpm process on <dir>/swtpm.sock (+ .ctrl, the name the swtpm TCTI derives).
class swtpm_process {
public:
    swtpm_process();
    ~swtpm_process();
    swtpm_process(const swtpm_process&) = delete;
    swtpm_process& operator=(const swtpm_process&) = delete;

    std::string socket() const { return (dir_ / "swtpm.sock").string(); }
    std::string tcti() const { return "swtpm:path=" + socket(); }
    pid_t pid() const noexcept { return pid_; }

    /// Starts swtpm on the state directory and waits until its socket accepts connections.
    bool start();
    /// SIGCONT + SIGTERM and reap; the state directory stays (a restart keeps the TPM's NV state).
    void stop();
    /// The directory holding the TPM state, the sockets and swtpm.log.
    const std::filesystem::path& dir() const noexcept { return dir_; }

private:
    bool connectable() const;

    std::filesystem::path dir_;
    pid_t pid_ = -1;
};

}  // namespace la::test
