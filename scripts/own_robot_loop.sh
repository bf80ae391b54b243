#!/usr/bin/env bash
# Record -> dataset -> train -> deploy, with the sim robot standing in for your arm and its
# scripted expert for your teleoperator (README "Your own robot"). Each step is the command a
# user with a real robot runs; only step 1 changes (your driver publishes the same topics).
#
#   bash scripts/own_robot_loop.sh [EPISODES=110] [TOKENIZER_STEPS=1500] [POLICY_STEPS=1000]
#
# Writes data/rec/demos.mcap, data/lerobot/rec-demos (LeRobotDataset v3), runs/own/{tok,vla}-task
# and results/own/{own,shipped}/summary.json (the same held-out seeds for both). About 35 min
# on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
EPISODES=${1:-110}
TOK_STEPS=${2:-1500}
POL_STEPS=${3:-1000}
BIN=.venv/bin
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl} HF_HUB_OFFLINE=1
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-57} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
mkdir -p data/rec

echo "== 1. record $EPISODES demonstrations (expert-driven sim robot, embodied record)"
$BIN/embodied record --out data/rec/demos.mcap --duration 7200 &
REC=$!
sleep 5
$BIN/embodied-sim-robot-node --ros-args -p driver:=expert -p task:=all \
    -p episodes:="$EPISODES" -p seed:=0 -p wait_for_policy_s:=60.0 --log-level warn
sleep 2
kill -INT "$REC"
wait "$REC"

echo "== 2. the recording as a LeRobotDataset v3"
$BIN/embodied record-to-lerobot data/rec/demos.mcap --out data/lerobot/rec-demos \
    --successful-only --overwrite

echo "== 3. train a tokenizer and a policy on it, with the same commands as the shipped ones"
$BIN/embodied train tokenizer --dataset data/lerobot/rec-demos --out runs/own/tok-task \
    --steps "$TOK_STEPS"
$BIN/embodied train policy --dataset data/lerobot/rec-demos --tokenizer runs/own/tok-task \
    --out runs/own/vla-task --steps "$POL_STEPS"

echo "== 4. deploy: closed loop on held-out seeds, beside the shipped models on the same seeds"
$BIN/embodied eval --models runs/own --tokenizers tok-task --codecs tokens --budgets 64 --episodes 10 \
    --no-references --out results/own/own
$BIN/embodied eval --tokenizers tok-task --codecs tokens --budgets 64 --episodes 10 --no-references \
    --out results/own/shipped
