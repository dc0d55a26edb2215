# libFuzzer flags for one target (sourced by fuzz-smoke.sh and fuzz-long.sh).
#
# session: the server under test runs on a tokio runtime whose I/O driver hands the kernel (epoll)
# the only pointer to each registration, so LeakSanitizer, which cannot see that reference, reports
# sockets in flight as leaks at random (a reported input does not reproduce on its own). Memory
# growth is for a soak test to find; this target checks panics, hangs and answers.
extra_flags() {
    case "$1" in
        session) echo "-detect_leaks=0" ;;
        *) ;;
    esac
}
