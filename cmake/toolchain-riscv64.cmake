# Cross toolchain for the firmware build (firmware/CMakeLists.txt): RV64IMAC, soft-float ABI (lp64:
# any floating point would become a libgcc call such as __floatdidf, which firmware/linkcheck.sh
# rejects), medany code model, picolibc's headers (Debian: gcc-riscv64-unknown-elf,
# picolibc-riscv64-unknown-elf).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(CMAKE_C_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_AR riscv64-unknown-elf-ar)
set(CMAKE_RANLIB riscv64-unknown-elf-ranlib)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(TOE_FW_ARCH_FLAGS "-march=rv64imac -mabi=lp64 -mcmodel=medany")
set(TOE_FW_TOOL_PREFIX riscv64-unknown-elf-)
set(CMAKE_C_FLAGS_INIT "${TOE_FW_ARCH_FLAGS} --specs=picolibc.specs")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
