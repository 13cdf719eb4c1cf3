-- AMPLab Big Data Benchmark query 2a: aggregation (SUBSTR(sourceIP, 1, 8))
SELECT SUBSTR(sourceIP, 1, 8), SUM(adRevenue) FROM uservisits GROUP BY SUBSTR(sourceIP, 1, 8);
