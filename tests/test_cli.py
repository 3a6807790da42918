#!/usr/bin/python3
"""Every pi0rt-* tool follows one command-line convention (common/pi0_cli.h): --help
prints the usage on stdout and exits 0; an unknown option or an option without its value
is a usage error: one line on stderr naming the option, exit status 2; a command line that
is fine but whose work fails exits 1 with one line on stderr.
BUILD (default build) is where the binaries are. Ends with `N passed, N failed`."""
import os
import subprocess
import sys

BUILD = os.environ.get("BUILD", "build")

# tool, the arguments before the options (a command), an option that takes a value, and
# a well-formed command line whose work fails (None: the tool has no such failure that
# is quick to provoke)
TOOLS = [
    ("pi0rt-infer", [], "--model",
     ["--model", "/nonexistent-model", "--state", "/nonexistent.npy", "--tokens",
      "/nonexistent.npy", "--out", "/nonexistent/out.npy"]),
    ("pi0rt-mkmodel", [], "--size",
     ["--size", "tiny", "--variant", "pi0", "--out", "/proc/nonexistent/model"]),
    ("pi0rt-tokenize", [], "--model", ["--model", "/nonexistent.model", "hello"]),
    ("pi0rt-shm", ["echo"], "--count", ["info", "nonexistent_topic_%d" % os.getpid()]),
    ("pi0rt-bench", ["gemm"], "--threads", ["gemm", "4", "4", "4", "--backend", "nonexistent"]),
    ("pi0rt-calib", ["show"], "--in", ["check", "/nonexistent-robot.ini"]),
    ("pi0rt-launch", [], "--duration", ["--check", "/nonexistent-launch.ini"]),
    ("pi0rt-node", [], "--config", ["--config", "/nonexistent-node.ini", "--check"]),
    ("pi0rt-camsim", [], "--rate", None),
    ("pi0rt-motorsim", [], "--rate", None),
    ("pi0rt-status", [], "--interval", None),
]


def run(tool, args):
    return subprocess.run([os.path.join(BUILD, tool), *args], capture_output=True, text=True,
                          timeout=60)


def one_line(r, must):
    err = r.stderr.strip()
    if len(err.splitlines()) != 1 or must not in err:
        return f"stderr should be one line naming {must!r}, got {err!r}"
    return None


def check(tool, cmd, opt, failing):
    problems = []
    r = run(tool, [*cmd, "--help"])
    if r.returncode != 0 or "usage" not in r.stdout:
        problems.append(f"--help: exit {r.returncode}, stdout {r.stdout[:60]!r}")
    for args, must in (([*cmd, "--bogus"], "unknown option --bogus"),
                       ([*cmd, "-Z"], "unknown option -Z"),
                       ([*cmd, opt], f"{opt} needs a value")):
        r = run(tool, args)
        if r.returncode != 2:
            problems.append(f"{' '.join(args)}: exit {r.returncode}, want 2")
        p = one_line(r, must)
        if p:
            problems.append(f"{' '.join(args)}: {p}")
    if failing is None:
        return problems
    r = run(tool, failing)
    if r.returncode != 1:
        problems.append(f"{' '.join(failing)}: exit {r.returncode}, want 1 ({r.stderr.strip()!r})")
    elif len(r.stderr.strip().splitlines()) != 1:
        problems.append(f"{' '.join(failing)}: stderr is not one line: {r.stderr!r}")
    return problems


# tools reading an INI file, given a directory instead: exit 1, one line naming it
DIR_INPUTS = [
    ("pi0rt-node", ["--check", "--config"]),
    ("pi0rt-launch", ["--check"]),
    ("pi0rt-calib", ["check"]),
]


def check_dir_input(tool, args):
    d = "/tmp"
    r = run(tool, [*args, d])
    if r.returncode != 1:
        return [f"{' '.join(args)} {d}: exit {r.returncode}, want 1 ({r.stderr.strip()!r})"]
    p = one_line(r, f"{d}: ")
    if p is None and "directory" not in r.stderr:
        p = f"stderr should say {d} is a directory, got {r.stderr.strip()!r}"
    return [f"{' '.join(args)} {d}: {p}"] if p else []


def main():
    passed = failed = 0
    cases = [(tool, lambda t=tool, c=cmd, o=opt, f=failing: check(t, c, o, f))
             for tool, cmd, opt, failing in TOOLS]
    cases += [(f"{tool} (a directory as the file)", lambda t=tool, a=args: check_dir_input(t, a))
              for tool, args in DIR_INPUTS]
    for name, fn in cases:
        problems = fn()
        for p in problems:
            print(f"  {name}: {p}")
        print(("ok   " if not problems else "FAIL ") + name)
        passed += not problems
        failed += bool(problems)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
