# Cross toolchain for the unit tests on a 32-bit Linux target (tests/cross/run.sh): i686
# (Debian: crossbuild-essential-i386, qemu-user; gcc-multilib would conflict with the other cross
# compilers). The tests run under qemu-i386 with the cross libc: an x86_64 kernel may run i386 code
# natively, but not every one does (IA32 emulation can be off, as on this project's CI VMs), and
# the cross libc is not where the binaries' interpreter path points.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(CMAKE_C_COMPILER i686-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-i386 -L /usr/i686-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/i686-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
