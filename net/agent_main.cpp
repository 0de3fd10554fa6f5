#include "net/daemon.hpp"

int main(int argc, char** argv) { return la::net::run_agent(argc, argv); }
