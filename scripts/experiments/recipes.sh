# recipes.sh: the training recipes, in one place; sourced by scripts/experiments.sh and
# scripts/extra_task.sh (models/README.md ships the LoRA one). Two epochs, the best validation
# loss kept. Learning rates from 100-step title runs on the bundled base (validation loss at step
# 100): LoRA 1e-3 6.33, 5e-3 6.22; full 1e-3 5.60 (3e-4 learns slower still).
seed=1
lora_recipe=(--rank 8 --targets all --lr 5e-3 --warmup 10 --batch 8 --seq 512 --patience 3 --seed $seed)
full_recipe=(--full --lr 1e-3 --wd 0.01 --warmup 10 --batch 8 --seq 512 --patience 3 --seed $seed)
