#!/usr/bin/env bash
# Compare `faderbridge render` with ffmpeg running an equivalent filter graph on the same 32
# one-minute stems (written by `cargo bench --bench engine render` to target/bench-stems).
# Needs ffmpeg (apt-get install ffmpeg).
#
# Per stem both do: a 24 dB/oct Butterworth high-pass at 60 Hz (two biquads, Q 0.541 and
# 1.307), a low shelf, two bells and a high shelf with the session's settings, a peak-detecting
# compressor (-20 dB, 3:1, 6 dB knee, 10/120 ms), the strip's pan (sine law) and fader, and a
# sum of the 32 stems; both write a 32-bit float stereo WAV. faderbridge also runs a gate,
# saturation and two sends per stem, two aux buses, a master compressor and a true-peak
# limiter, and measures loudness and true peak; ffmpeg's graph is the one the issue names
# (highpass, four equalizers, acompressor, pan, amix), so any difference favours ffmpeg.
#
# Both run with their defaults for threads: ffmpeg reads its inputs on threads of its own and
# runs the filter graph on one; faderbridge maps or reads the stems, runs half the channel strips
# on a second thread for the whole render, and the loudness measurement and the writer on a
# third. The CPU column shows how much of the machine each used (user + system seconds over
# wall seconds).
#
# Environment: FB_BENCH_DIR (default target/bench-stems), RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${FB_BENCH_DIR:-target/bench-stems}
runs=${RUNS:-3}
[ -f "$dir/s31.wav" ] || cargo bench --bench engine render
cargo build --release --bin faderbridge -q
fb="${CARGO_TARGET_DIR:-target}/release/faderbridge"
args=(); graph=""; mix=""
for i in $(seq 0 31); do
  # The bench's pan for strip i: ((i % 7) - 3) / 4, sine law for a mono source.
  read -r pl pr < <(awk -v i="$i" 'BEGIN { p = ((i % 7) - 3) / 4; t = (p + 1) * atan2(1, 1);
    printf "%.6f %.6f\n", cos(t), sin(t) }')
  args+=(-i "$dir/s$i.wav")
  graph+="[$i:a]highpass=f=60:poles=2:t=q:w=0.541,highpass=f=60:poles=2:t=q:w=1.307,"
  graph+="lowshelf=f=80:t=q:w=0.7:g=2,equalizer=f=400:t=q:w=1.4:g=-3,"
  graph+="equalizer=f=2500:t=q:w=1.0:g=2,highshelf=f=9000:t=q:w=0.7:g=1.5,"
  graph+="acompressor=threshold=0.1:ratio=3:knee=2:attack=10:release=120:detection=peak,"
  graph+="pan=stereo|c0=$pl*c0|c1=$pr*c0,volume=-12dB[c$i];"
  mix+="[c$i]"
done
graph+="${mix}amix=inputs=32:normalize=0[out]"

# Prints "wall user+sys" of one run of the command.
timed() {
  local t
  t=$(mktemp)
  /usr/bin/time -o "$t" -f "%e %U %S" "$@" >/dev/null
  awk '{ printf "%.2f %.2f\n", $1, $2 + $3 }' "$t"
  rm -f "$t"
}
printf "%-12s %8s %8s %6s\n" run wall_s cpu_s cpu/wall
for r in $(seq 1 "$runs"); do
  read -r fw fc < <(timed ffmpeg -v error -y "${args[@]}" -filter_complex "$graph" \
    -map "[out]" -c:a pcm_f32le "$dir/ffmpeg-mix.wav")
  read -r bw bc < <(timed "$fb" render "$dir/session.yaml" -o "$dir/fb-mix.wav")
  printf "%-12s %8s %8s %6.2f\n" "ffmpeg $r" "$fw" "$fc" "$(awk -v a="$fc" -v b="$fw" 'BEGIN{print a/b}')"
  printf "%-12s %8s %8s %6.2f\n" "fb $r" "$bw" "$bc" "$(awk -v a="$bc" -v b="$bw" 'BEGIN{print a/b}')"
  echo "ratio $r: faderbridge is $(awk -v a="$fw" -v b="$bw" 'BEGIN{printf "%.1f", a/b}')x faster (wall)"
done
