# `cmake --install BUILD --prefix P`: the CLI in P/bin, the libraries in P/lib, the public headers
# in P/include/wavllm, the Python package in P/lib/wavllm/python (where P/bin/wavllm finds its
# converter), and a CMake package: find_package(wavllm) gives wavllm::wavllm, the whole engine.
include(CMakePackageConfigHelpers)

# wavllm::wavllm is every stage (the executable owns the plain name `wavllm`).
add_library(wavllm_library INTERFACE)
target_link_libraries(wavllm_library INTERFACE wavllm_pipeline)
set_target_properties(wavllm_library PROPERTIES EXPORT_NAME wavllm)

install(TARGETS wavllm RUNTIME DESTINATION bin)
install(TARGETS wavllm_core_io wavllm_core wavllm_kernels wavllm_nn wavllm_audio wavllm_encoders wavllm_adapter
                wavllm_decoder wavllm_pipeline wavllm_library
        EXPORT wavllmTargets ARCHIVE DESTINATION lib LIBRARY DESTINATION lib)
get_property(header_dirs GLOBAL PROPERTY WAVLLM_PUBLIC_HEADER_DIRS)
foreach(dir ${header_dirs})
  install(DIRECTORY ${dir}/ DESTINATION include)
endforeach()
install(EXPORT wavllmTargets NAMESPACE wavllm:: DESTINATION lib/cmake/wavllm)
configure_package_config_file(cmake/wavllmConfig.cmake.in ${PROJECT_BINARY_DIR}/wavllmConfig.cmake
                              INSTALL_DESTINATION lib/cmake/wavllm)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/wavllmConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/wavllmConfig.cmake ${PROJECT_BINARY_DIR}/wavllmConfigVersion.cmake
        DESTINATION lib/cmake/wavllm)

if(WAVLLM_BUILD_PYTHON)
  install(DIRECTORY ${PROJECT_BINARY_DIR}/python/wavllm DESTINATION lib/wavllm/python
          PATTERN __pycache__ EXCLUDE)
endif()
