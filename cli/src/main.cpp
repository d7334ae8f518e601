// wavllm: the command-line front end (see commands.h).
#include "commands.h"

int main(int argc, char** argv) { return wavllm::cli::run_main(argc, argv); }
