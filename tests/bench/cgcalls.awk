# Total calls to each function named in fns (comma-separated) in a
# callgrind output file, from its "cfn=" / "calls=" lines.
#   awk -v fns=malloc,free -f cgcalls.awk callgrind.out   ->  "malloc 1234" lines
BEGIN { n = split(fns, want, ","); for (i = 1; i <= n; i++) total[want[i]] = 0 }
/^c?fn=\(/ {
	id = $1; sub(/^c?fn=/, "", id)
	name = $0; sub(/^c?fn=\([0-9]+\) ?/, "", name)
	sub(/[@'].*/, "", name)
	if (name != "") names[id] = name
	if ($0 ~ /^cfn=/) cur = names[id]
	next
}
/^calls=/ { c = $1; sub(/^calls=/, "", c); if (cur in total) total[cur] += c }
END { for (i = 1; i <= n; i++) print want[i], total[want[i]] }
