#include "tests/support/swtpm.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace la::test {

swtpm_process::swtpm_process() {
    char tmpl[] = "/tmp/la-tpm-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    if (d != nullptr) dir_ = d;
}

swtpm_process::~swtpm_process() {
    stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

bool swtpm_process::start() {
    const std::string state = "dir=" + dir_.string();
    const std::string server = "type=unixio,path=" + socket();
    const std::string ctrl = "type=unixio,path=" + socket() + ".ctrl";
    const std::string log = "file=" + (dir_ / "swtpm.log").string();
    std::vector<std::string> args = {"swtpm", "socket", "--tpm2", "--tpmstate", state,
                                     "--server", server, "--ctrl", ctrl, "--log", log,
                                     "--flags", "not-need-init,startup-clear"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
        // Dies with the test process, even a crashed one; a stopped swtpm left behind would
        // also hold ctest's output pipe open, so it gets none.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const int devnull = ::open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            ::dup2(devnull, STDOUT_FILENO);
            ::dup2(devnull, STDERR_FILENO);
        }
        ::execvp("swtpm", argv.data());
        ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
        if (connectable()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

void swtpm_process::stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

bool swtpm_process::connectable() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket().c_str(), sizeof addr.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

}  // namespace la::test
