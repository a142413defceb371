# OpenWrt package architectures and the Go settings that build for them.
# Sourced by the build scripts. One line: OPENWRT_ARCH GOARCH GOARM_OR_GOMIPS
# (GOMIPS=softfloat: MIPS routers have no FPU; GOARM=7 for Cortex-A7/A9,
# GOARM=5 for older ARMv5 SoCs such as the Kirkwood/arm926ej-s).
PINHOLE_TARGETS="
mips_24kc mips softfloat
mipsel_24kc mipsle softfloat
arm_cortex-a7_neon-vfpv4 arm 7
arm_cortex-a9 arm 7
arm_arm926ej-s arm 5
aarch64_cortex-a53 arm64 -
aarch64_generic arm64 -
x86_64 amd64 -
"
