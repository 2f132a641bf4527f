#include "nbd-test.h"
int main(int argc, char **argv) { nbdt_init(argc, argv); return test_done(); }
