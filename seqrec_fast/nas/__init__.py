"""What two or more search algorithms use: the search loop (search_loop: run directory, resume,
timing, progress, retraining; search_run: the directory's files, results and plots), the
relaxations of a discrete choice (softmax, Gumbel-softmax, temperature schedules), the cost
model (parameters and multiply-adds) and differential evolution. A piece only one algorithm
uses lives in that algorithm's package."""
