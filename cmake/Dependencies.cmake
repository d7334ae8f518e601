# Every dependency comes from a Debian 12 package (sentencepiece models are read by decoder/ itself:
# libsentencepiece clashes with LibTorch's protobuf in one process); a missing one stops configure with the
# package to install, instead of a compiler error much later.
find_package(PkgConfig)
if(NOT PkgConfig_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config (or run ./setup.sh)")
endif()

macro(wavllm_require_pkg prefix module debian_pkg)
  pkg_check_modules(${prefix} IMPORTED_TARGET ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found: apt-get install ${debian_pkg} (or run ./setup.sh)")
  endif()
endmacro()

wavllm_require_pkg(SNDFILE sndfile libsndfile1-dev)
wavllm_require_pkg(FFTW3 fftw3 libfftw3-dev)  # double precision: the log-mel matches float64 numpy
wavllm_require_pkg(SOXR soxr libsoxr-dev)
wavllm_require_pkg(WEBRTC_APM webrtc-audio-processing libwebrtc-audio-processing-dev)  # the voice detector
wavllm_require_pkg(HTTPLIB cpp-httplib libcpp-httplib-dev)  # wavllm serve

find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  message(FATAL_ERROR "nlohmann-json not found: apt-get install nlohmann-json3-dev (or run ./setup.sh)")
endif()

# A CUDA LibTorch is accepted through Torch_DIR or CMAKE_PREFIX_PATH.
find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "LibTorch not found: apt-get install libtorch-dev, or point Torch_DIR at "
                      "another LibTorch (e.g. a CUDA build) (or run ./setup.sh)")
endif()
message(STATUS "LibTorch ${Torch_VERSION} at ${TORCH_INSTALL_PREFIX}")
# LibTorch's intra-op pool is OpenMP's: per-call thread counts set the calling thread's count.
find_package(OpenMP REQUIRED COMPONENTS CXX)
# oneDNN (the same library Debian's LibTorch links): float32 products that do not depend on the
# BLAS's CPU detection (kernels/sgemm.h).
find_package(dnnl CONFIG QUIET)
if(NOT dnnl_FOUND)
  message(FATAL_ERROR "oneDNN not found: apt-get install libdnnl-dev (or run ./setup.sh)")
endif()

if(WAVLLM_BUILD_TESTS)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    message(FATAL_ERROR "GoogleTest not found: apt-get install libgtest-dev (or run ./setup.sh)")
  endif()
endif()

if(WAVLLM_BUILD_PYTHON)
  if(NOT PYTHON_EXECUTABLE)
    # Debian's torch, numpy and pybind11 target the system interpreter, not whatever is first on PATH.
    set(PYTHON_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "Python for the binding")
  endif()
  find_package(pybind11 CONFIG QUIET)
  if(NOT pybind11_FOUND)
    message(FATAL_ERROR "pybind11 not found: apt-get install pybind11-dev python3-dev (or run ./setup.sh)")
  endif()
endif()

# Libraries that include ATen compile its (large) header once per target.
function(wavllm_torch_target target)
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_include_directories(${target} SYSTEM PUBLIC ${TORCH_INCLUDE_DIRS})
  target_compile_options(${target} PUBLIC ${TORCH_CXX_FLAGS})
  target_precompile_headers(${target} PRIVATE <ATen/ATen.h>)
endfunction()

# <folder>/include holds a library's public headers: used in place in the build tree, installed
# under include/ (cmake/Install.cmake).
function(wavllm_public_headers target)
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
                                              $<INSTALL_INTERFACE:include>)
  set_property(GLOBAL APPEND PROPERTY WAVLLM_PUBLIC_HEADER_DIRS ${CMAKE_CURRENT_SOURCE_DIR}/include)
endfunction()

function(wavllm_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
endfunction()

# A model stage: one LibTorch library wavllm_<folder> of <folder>/src/*.cpp with its public
# headers in <folder>/include, linked to the stages it builds on.
function(wavllm_stage_library folder)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cpp)
  add_library(wavllm_${folder} ${srcs})
  wavllm_public_headers(wavllm_${folder})
  target_link_libraries(wavllm_${folder} PUBLIC ${ARGN})
  wavllm_torch_target(wavllm_${folder})
  wavllm_warnings(wavllm_${folder})
endfunction()
