# Installation, pkg-config, the CMake package and the Debian package (docs/operations.md).
#
#   make install DESTDIR=/scratch PREFIX=/usr     cmake --install build (GNUInstallDirs layout)
#   make uninstall                                removes what the last install wrote
#   make deb                                      build/toekit_VERSION_ARCH.deb (CPack)
#
# Installed binaries find libtoe through a RUNPATH relative to themselves ($ORIGIN/../LIBDIR), so
# a tree installed under any prefix (or DESTDIR) runs as it is. Files that name the install prefix
# (libtoe.pc, the systemd unit) are written at install time, so `cmake --install --prefix P` and
# CPack's /usr get the right paths.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TOE_GEN_DIR ${CMAKE_BINARY_DIR}/cmake-gen)

# Two-step configuration: now with the build's values, and at install time with the prefix
# (templates write @TOE_PREFIX@ for it). DEST is relative to the prefix.
set(TOE_PREFIX "@CMAKE_INSTALL_PREFIX@")
function(toe_install_configured template name dest perms)
  configure_file(${template} ${TOE_GEN_DIR}/${name}.in @ONLY)
  install(CODE "
    configure_file(\"${TOE_GEN_DIR}/${name}.in\" \"${TOE_GEN_DIR}/installed/${name}\" @ONLY)
    file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${dest}\" TYPE FILE ${perms}
         FILES \"${TOE_GEN_DIR}/installed/${name}\")")
endfunction()

# ---- programs and libraries -------------------------------------------------------------------
foreach(t toed toectl toe-nc toe-impair toe-proxyd)
  if(TARGET ${t})
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(TARGETS toe LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Unspecified)
install(TARGETS toe-preload LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The engine as a library of its own (toe/engine.h and friends), for firmware and test benches.
install(TARGETS toe_engine toe_wire ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

# Headers per product: toe/toe.h (libtoe), toe/abi.h (the transport ABI), toe/engine.h,
# counters.h, pbuf.h, steer.h, tcp.h (the engine); toe/errno.h is shared by all three.
install(FILES include/toe/toe.h include/toe/errno.h include/toe/abi.h include/toe/engine.h
              include/toe/counters.h include/toe/pbuf.h include/toe/steer.h include/toe/tcp.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/toe)

# ---- toe-run and its profiles (also in the build tree: build/bin/toe-run, build/share) --------
file(STRINGS ${CMAKE_SOURCE_DIR}/include/toe/abi.h _abi_major REGEX "^#define TOE_ABI_MAJOR ")
file(STRINGS ${CMAKE_SOURCE_DIR}/include/toe/abi.h _abi_minor REGEX "^#define TOE_ABI_MINOR ")
string(REGEX MATCH "[0-9]+" _abi_major "${_abi_major}")
string(REGEX MATCH "[0-9]+" _abi_minor "${_abi_minor}")
set(TOE_ABI_VERSION "${_abi_major}.${_abi_minor}")
configure_file(${CMAKE_SOURCE_DIR}/packaging/toe-run.in ${CMAKE_BINARY_DIR}/bin/toe-run @ONLY
               FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                WORLD_READ WORLD_EXECUTE)
install(PROGRAMS ${CMAKE_BINARY_DIR}/bin/toe-run DESTINATION ${CMAKE_INSTALL_BINDIR})
file(GLOB TOE_PROFILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/profiles/*.conf)
file(COPY ${TOE_PROFILES} DESTINATION ${CMAKE_BINARY_DIR}/share/toekit/profiles)
install(FILES ${TOE_PROFILES} DESTINATION ${CMAKE_INSTALL_DATADIR}/toekit/profiles)

# ---- service, completion, manual pages, examples ----------------------------------------------
set(TOE_BINDIR_REL ${CMAKE_INSTALL_BINDIR})
toe_install_configured(${CMAKE_SOURCE_DIR}/packaging/systemd/toed@.service.in toed@.service
                       lib/systemd/system "PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ")
install(FILES packaging/toed.conf.example DESTINATION ${CMAKE_INSTALL_DATADIR}/toekit)
# One completion file for every program (bash-completion loads it by the program's name).
foreach(p toed toectl toe-run toe-nc toe-impair toe-proxyd)
  install(FILES packaging/completion/toekit
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ${p})
endforeach()
file(GLOB TOE_MANPAGES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/packaging/man/*.1
     ${CMAKE_SOURCE_DIR}/packaging/man/*.8)
foreach(m ${TOE_MANPAGES})
  get_filename_component(_ext ${m} LAST_EXT)
  string(SUBSTRING ${_ext} 1 1 _sec)
  install(FILES ${m} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_sec})
endforeach()
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---- pkg-config and the CMake package ---------------------------------------------------------
set(TOE_PC_PREFIX "${TOE_PREFIX}")
toe_install_configured(${CMAKE_SOURCE_DIR}/cmake/libtoe.pc.in libtoe.pc
                       ${CMAKE_INSTALL_LIBDIR}/pkgconfig "")
set(TOE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/toekit)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/toekitConfig.cmake.in
                              ${TOE_GEN_DIR}/toekitConfig.cmake INSTALL_DESTINATION ${TOE_CMAKE_DIR})
write_basic_package_version_file(${TOE_GEN_DIR}/toekitConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${TOE_GEN_DIR}/toekitConfig.cmake ${TOE_GEN_DIR}/toekitConfigVersion.cmake
        DESTINATION ${TOE_CMAKE_DIR})

# The operator's documentation beside the examples.
foreach(doc README.md docs/operations.md docs/interception.md docs/transport.md)
  if(EXISTS ${CMAKE_SOURCE_DIR}/${doc})
    install(FILES ${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()

# ---- the Debian package -----------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME toekit)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR toekit)
set(CPACK_PACKAGE_CONTACT "toekit maintainers <toekit@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "full-offload network stack: device daemon (toed), libtoe, preload launcher and tools")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# toectl capture compiles tcpdump expressions with libpcap.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6 (>= 2.34), libpcap0.8 (>= 1.10)")
# libtoe.so.1 in /usr/lib: run ldconfig after install and removal (a dpkg trigger, no scripts).
file(WRITE ${TOE_GEN_DIR}/deb/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${TOE_GEN_DIR}/deb/triggers)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
