#!/usr/bin/env bash
# Compare `faderbridge render` with ffmpeg running an equivalent filter graph (highpass, four
# equalizers, acompressor, pan, amix) on the same 32 one-minute stems.
# Needs ffmpeg (apt-get install ffmpeg). Run `cargo bench --bench engine render` first: it
# writes the stems and the session to target/bench-stems.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${FB_BENCH_DIR:-target/bench-stems}
[ -f "$dir/s31.wav" ] || cargo bench --bench engine render
cargo build --release --bin faderbridge -q
args=(); graph=""; mix=""
for i in $(seq 0 31); do
  args+=(-i "$dir/s$i.wav")
  graph+="[$i:a]highpass=f=60:poles=2,highpass=f=60:poles=2,"
  graph+="equalizer=f=80:t=q:w=0.7:g=2,equalizer=f=400:t=q:w=1.4:g=-3,"
  graph+="equalizer=f=2500:t=q:w=1.0:g=2,equalizer=f=9000:t=q:w=0.7:g=1.5,"
  graph+="acompressor=threshold=0.1:ratio=3:attack=10:release=120,"
  graph+="pan=stereo|c0=0.7*c0|c1=0.7*c0,volume=-12dB[c$i];"
  mix+="[c$i]"
done
graph+="${mix}amix=inputs=32:normalize=0[out]"
echo "ffmpeg:"
/usr/bin/time -f "  %e s wall, %U s user" ffmpeg -v error -y "${args[@]}" \
  -filter_complex "$graph" -map "[out]" -c:a pcm_f32le "$dir/ffmpeg-mix.wav"
echo "faderbridge:"
/usr/bin/time -f "  %e s wall, %U s user" target/release/faderbridge render "$dir/session.yaml" -o "$dir/fb-mix.wav" >/dev/null
