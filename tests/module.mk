# tests/: checks of the tree itself (each a script ending in `N passed, N failed, N skipped`).
TEST_CMDS += tests/check-format
