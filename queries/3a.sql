-- AMPLab Big Data Benchmark query 3a: join, aggregation and top-1 (visitDate BETWEEN 1980-01-01 AND 1980-04-01)
SELECT sourceIP, totalRevenue, avgPageRank
FROM (SELECT sourceIP, AVG(pageRank) AS avgPageRank, SUM(adRevenue) AS totalRevenue
      FROM rankings AS R, uservisits AS UV
      WHERE R.pageURL = UV.destURL
        AND UV.visitDate BETWEEN Date('1980-01-01') AND Date('1980-04-01')
      GROUP BY UV.sourceIP)
ORDER BY totalRevenue DESC LIMIT 1;
