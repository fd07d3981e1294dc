# bench/compare's plot: fg p99 and p99.9 and awaited-item p99 (ms, log scale) and CPU shares per configuration.
# Usage: gnuplot -e "data='plot.dat'; out='plot.png'" compare.gnuplot
set terminal pngcairo size 1200,500 font ",10"
set output out
set multiplot layout 1,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30 noenhanced
set key top left noenhanced
set logscale y
set ylabel "ms"
set title "Latency p99 (lower is better)"
plot data using 2:xtic(1) title "foreground request p99", '' using 7 title "foreground request p99.9", '' using 3 title "awaited offload item p99"
unset logscale y
set yrange [0:100]
set ylabel "% of the machine"
set title "CPU shares"
plot data using 5:xtic(1) title "background", '' using 4 title "offload, all", '' using 6 title "offload bulk (no one waits)"
unset multiplot
