# plot.gp - every figure of a compare.sh run as a ratio to mpechod --no-store.
#   gnuplot -e "datafile='bench/results/DATE.ratios.dat'; outbase='bench/results/DATE'" plot.gp
# The data file has one row per figure and one column per server; "?" marks a failed cell, or one
# not run (socat UDP serves only UDP; the TCP-only servers get no udp cells).  The flood cells
# are not in it: mpechod --no-store, the reference, is not flooded.  With mpechod --prefork and
# the epoll yardstick there are up to 12 columns: twelve colours, so that none repeats.  The scale goes down to 1e-4
# for the udp req/s of the peers that lose most requests (xinetd) or fork per datagram (socat).

set datafile missing "?"
array colour[12] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", \
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8"]
do for [i=1:12] { set linetype i lc rgb colour[i] }
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [0.0001:1000]
set ytics ("0.0001" 0.0001, "0.001" 0.001, "0.01" 0.01, "0.1" 0.1, "0.5" 0.5, "1" 1, "2" 2, \
    "3" 3, "10" 10, "100" 100, "1000" 1000)
set grid ytics
set ylabel "ratio to mpechod --no-store (log scale)"
set xtics rotate by 25 right noenhanced
set key outside right top vertical noenhanced
set title "Echo servers on loopback: each figure over mpechod --no-store's\n(above 1: more conn/s, req/s, MiB/s, but also more latency or memory; missing bar: the cell failed or was not run)" noenhanced
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "black" front
set bmargin 6

ncols = system("head -n 1 '" . datafile . "' | awk -F'\"' '{ print (NF - 1) / 2 }'") + 0

set terminal pngcairo size 1400,700 font ",10"
set output outbase . ".png"
plot for [i=2:ncols+1] datafile using i:xtic(1) title columnheader(i)

set terminal svg size 1400,700 dynamic font ",10"
set output outbase . ".svg"
replot
unset output
