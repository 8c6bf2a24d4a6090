# Cross toolchain for the firmware build (firmware/CMakeLists.txt): Arm Cortex-A7 (ARMv7-A),
# Thumb-2, general registers only (-mgeneral-regs-only: no VFP or NEON register is touched, so the
# engine can run where FP state is not saved, e.g. in an interrupt handler; floating point would
# become __aeabi_* calls, which firmware/linkcheck.sh rejects), picolibc's headers (Debian:
# gcc-arm-none-eabi, picolibc-arm-none-eabi).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(TOE_FW_ARCH_FLAGS "-mcpu=cortex-a7 -mthumb -mfloat-abi=soft -mgeneral-regs-only")
set(TOE_FW_TOOL_PREFIX arm-none-eabi-)
set(CMAKE_C_FLAGS_INIT "${TOE_FW_ARCH_FLAGS} --specs=picolibc.specs")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
