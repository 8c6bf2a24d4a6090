# Cross toolchain for the firmware build (firmware/CMakeLists.txt): Arm Cortex-M7, Thumb-2, no FPU
# use (-mfloat-abi=soft: any floating point would become an __aeabi_* call, which
# firmware/linkcheck.sh rejects), picolibc's headers (Debian: gcc-arm-none-eabi,
# picolibc-arm-none-eabi).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(TOE_FW_ARCH_FLAGS "-mcpu=cortex-m7 -mthumb -mfloat-abi=soft")
set(TOE_FW_TOOL_PREFIX arm-none-eabi-)
set(CMAKE_C_FLAGS_INIT "${TOE_FW_ARCH_FLAGS} --specs=picolibc.specs")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
