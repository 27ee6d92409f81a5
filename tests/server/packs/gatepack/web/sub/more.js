console.log("gatepack sub");
