"""The compiled part of the wheel: CMake builds wavllm._wavllm and the `wavllm` executable
(Release, no tests) into WAVLLM_CMAKE_BUILD_DIR (default build/wheel), and both are copied into
the package; the version is the one CMakeLists.txt declares."""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
# setup.cfg keeps setuptools' work folders (and the egg-info) here, out of the sources.
os.makedirs(os.path.join(ROOT, "build", "setuptools"), exist_ok=True)


def cmake_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(wavllm VERSION ([0-9.]+)", f.read()).group(1)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = os.path.abspath(os.environ.get("WAVLLM_CMAKE_BUILD_DIR") or os.path.join(ROOT, "build", "wheel"))
        if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                                   "-DWAVLLM_BUILD_TESTS=OFF", f"-DPYTHON_EXECUTABLE={sys.executable}"])
        subprocess.check_call(["cmake", "--build", build_dir, "--target", "wavllm_python", "wavllm"])
        module = glob.glob(os.path.join(build_dir, "python", "wavllm", "_wavllm*.so"))
        if len(module) != 1:
            raise RuntimeError(f"expected one compiled module in {build_dir}/python/wavllm, found {module}")
        target = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.join(os.path.dirname(target), "_bin"), exist_ok=True)
        shutil.copy2(module[0], target)
        shutil.copy2(os.path.join(build_dir, "bin", "wavllm"), os.path.join(os.path.dirname(target), "_bin", "wavllm"))


setup(version=cmake_version(), ext_modules=[Extension("wavllm._wavllm", sources=[])], cmdclass={"build_ext": CMakeBuild})
